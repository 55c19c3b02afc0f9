/**
 * The people customers can be handed to (transfer, pool assignment, team members).
 *
 * `GET /users` needs org.manage; everyone else gets the users in their own customer data scope from
 * the ranking (`GET /dashboard/ranking`, which lists exactly those users) — for a rep with scope
 * `own` that is only themself, so the actions that need someone else stay hidden.
 */
import { computed, ref } from 'vue'
import { fetchRanking, listUsers } from '@/api/endpoints'
import { ApiError } from '@/api/errors'
import type { UserRef } from '@/api/types'
import { me } from './session'

export const people = ref<UserRef[]>([])
/** `forbidden`: the user may not list anyone (the actions that need a person are hidden). */
export const peopleState = ref<'idle' | 'loading' | 'loaded' | 'forbidden' | 'failed'>('idle')

let loading: Promise<UserRef[]> | null = null
/** Whose list this is (another sign-in on this tab reads its own). */
let loadedFor: number | null = null

async function fetchPeople(): Promise<UserRef[]> {
  try {
    const users = await listUsers()
    return users.filter((u) => u.is_active).map((u) => ({ id: u.id, display_name: u.display_name }))
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 403) throw err
  }
  const ranking = await fetchRanking('new_customers', 'day')
  return ranking.rows.map((r) => r.user).sort((a, b) => a.id - b.id)
}

export function loadPeople(force = false): Promise<UserRef[]> {
  if (peopleState.value === 'loaded' && !force && loadedFor === (me.value?.id ?? null)) return Promise.resolve(people.value)
  if (!loading) {
    const user = me.value?.id ?? null
    peopleState.value = 'loading'
    loading = fetchPeople()
      .then((list) => {
        people.value = list
        peopleState.value = 'loaded'
        loadedFor = user
        return list
      })
      .catch((err: unknown) => {
        people.value = []
        peopleState.value = err instanceof ApiError && err.status === 403 ? 'forbidden' : 'failed'
        throw err
      })
      .finally(() => {
        loading = null
      })
  }
  return loading
}

export function resetPeople(): void {
  people.value = []
  peopleState.value = 'idle'
}

/** Whether there is anyone but the user to hand a customer to. */
export const hasOtherPeople = computed(() => people.value.some((u) => u.id !== me.value?.id))
