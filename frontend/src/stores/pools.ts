/** The pools the user belongs to (SPEC C1): for the pool browser, release and the customer detail. */
import { computed, ref } from 'vue'
import { listPools } from '@/api/endpoints'
import type { Pool } from '@/api/types'
import { me } from './session'

export const pools = ref<Pool[]>([])
export const poolsLoaded = ref(false)

let loading: Promise<Pool[]> | null = null
/** Whose pools these are (another sign-in on this tab reads its own). */
let loadedFor: number | null = null

/** Loads once; `force` re-reads (counts and claims left change with every claim and release). */
export function loadPools(force = false): Promise<Pool[]> {
  if (poolsLoaded.value && !force && loadedFor === (me.value?.id ?? null)) return Promise.resolve(pools.value)
  if (!loading) {
    const user = me.value?.id ?? null
    loading = listPools()
      .then((list) => {
        pools.value = list
        poolsLoaded.value = true
        loadedFor = user
        return list
      })
      .finally(() => {
        loading = null
      })
  }
  return loading
}

export function resetPools(): void {
  pools.value = []
  poolsLoaded.value = false
}

export const poolById = computed(() => new Map(pools.value.map((p) => [p.id, p])))

/** Pools the user may claim from or release into (members and admins; not the pool.manage overview). */
export const myPools = computed(() => pools.value.filter((p) => p.my_role !== null))
