/** Reference data for pickers and labels, loaded once per session. */
import { computed, ref } from 'vue'
import { customerFacets, listCustomFields, listTagGroups } from '@/api/endpoints'
import type { CustomField, Facets, TagGroup } from '@/api/types'

export const tagGroups = ref<TagGroup[]>([])
export const customFields = ref<CustomField[]>([])
export const facets = ref<Facets>({ industries: [], sources: [], provinces: [], cities: [], levels: ['A', 'B', 'C'] })

let loading: Promise<void> | null = null
let loaded = false

export function loadMeta(force = false): Promise<void> {
  if (loaded && !force) return Promise.resolve()
  if (!loading) {
    loading = Promise.all([listTagGroups(), listCustomFields(), customerFacets()])
      .then(([groups, fields, f]) => {
        tagGroups.value = groups
        customFields.value = [...fields].sort((a, b) => a.position - b.position)
        facets.value = f
        loaded = true
      })
      .finally(() => {
        loading = null
      })
  }
  return loading
}

export function resetMeta(): void {
  loaded = false
  tagGroups.value = []
  customFields.value = []
}

export const customFieldByKey = computed(() => new Map(customFields.value.map((f) => [f.key, f])))

export const tagById = computed(() => {
  const map = new Map<number, { id: number; name: string; groupId: number; groupName: string; color: string | null }>()
  for (const g of tagGroups.value) {
    for (const t of g.tags) map.set(t.id, { id: t.id, name: t.name, groupId: g.id, groupName: g.name, color: g.color ?? null })
  }
  return map
})

/** Bumped after a customer is created, changed or deleted so cached lists refresh. */
export const customersVersion = ref(0)
export function customersChanged(): void {
  customersVersion.value++
}
