/**
 * The colleagues every person picker offers (transfer, pool assignment, team members), from
 * `GET /users/directory` (any signed-in user: active users by name, with their department).
 *
 * Each entry says whether the user's customer data scope covers that person (`in_scope`): a
 * transfer's or an assignment's new owner must be in scope (for a rep with scope `own` that is
 * only themself, so those actions stay hidden); a team member can be any active colleague.
 */
import { computed, ref } from 'vue'
import { userDirectory } from '@/api/endpoints'
import type { DirectoryEntry } from '@/api/types'
import { me } from './session'

/** How many the directory is read at once (the server's maximum): a full page may not be everyone. */
export const DIRECTORY_PAGE = 200

/** Who a picker offers: people in the user's data scope (new owners), or any active colleague. */
export type PeopleScope = 'in-scope' | 'anyone'

export const people = ref<DirectoryEntry[]>([])
export const peopleState = ref<'idle' | 'loading' | 'loaded' | 'failed'>('idle')
/** Whether `people` is everyone (less than a page came back), so a search can filter it here. */
export const peopleComplete = computed(() => peopleState.value === 'loaded' && people.value.length < DIRECTORY_PAGE)

let loading: Promise<DirectoryEntry[]> | null = null
/** Whose list this is (another sign-in on this tab reads its own: `in_scope` depends on the user). */
let loadedFor: number | null = null

export function loadPeople(force = false): Promise<DirectoryEntry[]> {
  if (peopleState.value === 'loaded' && !force && loadedFor === (me.value?.id ?? null)) return Promise.resolve(people.value)
  if (!loading) {
    const user = me.value?.id ?? null
    peopleState.value = 'loading'
    loading = userDirectory(undefined, DIRECTORY_PAGE)
      .then((list) => {
        people.value = list
        peopleState.value = 'loaded'
        loadedFor = user
        return list
      })
      .catch((err: unknown) => {
        people.value = []
        peopleState.value = 'failed'
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
  loadedFor = null
}

/** Whether a picker for `scope` offers this person (and they are not among `exclude`). */
export function isOffered(u: DirectoryEntry, scope: PeopleScope, exclude: readonly (number | null | undefined)[] = []): boolean {
  return (scope === 'anyone' || u.in_scope) && !exclude.includes(u.id)
}

/** The colleagues whose name contains `keyword`: filtered here when the directory is complete, else asked. */
export async function searchPeople(keyword: string): Promise<DirectoryEntry[]> {
  const kw = keyword.trim()
  const list = await loadPeople()
  if (!kw) return list
  if (peopleComplete.value) return list.filter((u) => u.display_name.toLowerCase().includes(kw.toLowerCase()))
  return userDirectory(kw, DIRECTORY_PAGE)
}

/**
 * Whether a picker for `scope` would offer anyone but `exclude`: false until the directory is
 * loaded. Judged by the people loaded (in an organisation larger than a page, someone in scope
 * could sort after them; the server cannot be asked for the in-scope people alone).
 */
export function anyoneOffered(scope: PeopleScope, exclude: readonly (number | null | undefined)[] = []): boolean {
  return peopleState.value === 'loaded' && people.value.some((u) => isOffered(u, scope, exclude))
}

/** Whether there is anyone in the user's data scope but themself to hand a customer to. */
export const hasOtherPeople = computed(() => anyoneOffered('in-scope', [me.value?.id]))
