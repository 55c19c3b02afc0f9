import { computed, ref } from 'vue'
import { fetchMe, logout as apiLogout } from '@/api/endpoints'
import { tokens } from '@/api/tokens'
import type { Me } from '@/api/types'
import { forgetPushOnThisDevice } from '@/utils/push'
import { clearApiCaches } from '@/offline/cache'
import { discardAllOfCurrentUser } from '@/offline/outbox'

export const me = ref<Me | null>(null)

export async function loadMe(force = false): Promise<Me> {
  if (me.value && !force) return me.value
  me.value = await fetchMe()
  return me.value
}

/**
 * Whether the user's roles grant a permission (e.g. `customer.delete`). Only hides actions the
 * server would refuse anyway; false until the profile is loaded.
 */
export function can(permission: string): boolean {
  return me.value?.permissions.includes(permission) ?? false
}

/**
 * Admins and anyone whose customer scope reaches beyond their own customers (managers): they get
 * the customer analytics entry. The analytics answer within anyone's scope; this only keeps the
 * reps' navigation as it was.
 */
export const isManager = computed(() => {
  const m = me.value
  if (!m) return false
  return m.is_admin || (m.scopes.customer !== undefined && m.scopes.customer !== 'own')
})

/** Drop this device's push subscription and revoke the refresh token (best effort), forget the user. */
export async function signOut(): Promise<void> {
  // the next person on this phone must not receive this user's pushes
  await forgetPushOnThisDevice()
  const refresh = tokens.refresh
  if (refresh) {
    try {
      await apiLogout(refresh)
    } catch {
      // the token is dropped locally either way
    }
  }
  // the next person on this phone must see none of this user's data, offline copies included
  await discardAllOfCurrentUser().catch(() => undefined)
  await clearApiCaches()
  tokens.clear()
  me.value = null
}
