/**
 * Web Push on this device (SPEC K3): the service worker (`/sw.js`) shows the pushes; this module
 * subscribes with the server's VAPID key and registers the subscription with the API.
 */
import { deletePushSubscription, savePushSubscription, vapidPublicKey } from '@/api/endpoints'

export const SW_URL = '/sw.js'

export function pushSupported(): boolean {
  return (
    typeof window !== 'undefined' &&
    window.isSecureContext &&
    'serviceWorker' in navigator &&
    'PushManager' in window &&
    'Notification' in window
  )
}

/** Register the service worker (scope `/`); a no-op where unsupported. */
export async function registerServiceWorker(): Promise<ServiceWorkerRegistration | null> {
  if (typeof navigator === 'undefined' || !('serviceWorker' in navigator)) return null
  try {
    return await navigator.serviceWorker.register(SW_URL, { scope: '/' })
  } catch {
    return null
  }
}

async function registration(): Promise<ServiceWorkerRegistration | null> {
  if (!('serviceWorker' in navigator)) return null
  return (await navigator.serviceWorker.getRegistration('/')) ?? (await registerServiceWorker())
}

export async function currentSubscription(): Promise<PushSubscription | null> {
  if (!pushSupported()) return null
  const reg = await registration()
  return reg ? reg.pushManager.getSubscription() : null
}

/** base64url (the VAPID public key) → bytes for `applicationServerKey`. */
export function base64UrlToBytes(value: string): Uint8Array<ArrayBuffer> {
  const padded = value.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (value.length % 4)) % 4)
  const raw = atob(padded)
  const bytes = new Uint8Array(new ArrayBuffer(raw.length))
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i)
  return bytes
}

function sameKey(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a) return false
  const x = new Uint8Array(a)
  return x.length === b.length && x.every((v, i) => v === b[i])
}

export type EnableResult = 'enabled' | 'denied' | 'unsupported'

/** Ask for permission, subscribe with the server's key and register the subscription. */
export async function enablePush(): Promise<EnableResult> {
  if (!pushSupported()) return 'unsupported'
  const permission = await Notification.requestPermission()
  if (permission !== 'granted') return 'denied'
  const reg = await registration()
  if (!reg) return 'unsupported'
  const key = base64UrlToBytes(await vapidPublicKey())
  let sub = await reg.pushManager.getSubscription()
  if (sub && !sameKey(sub.options.applicationServerKey, key)) {
    // subscribed with an older server key: it would never receive anything
    await sub.unsubscribe()
    sub = null
  }
  sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key })
  const json = sub.toJSON()
  await savePushSubscription(sub.endpoint, { p256dh: json.keys?.p256dh ?? '', auth: json.keys?.auth ?? '' })
  return 'enabled'
}

/** Unsubscribe this device and tell the server to forget it. */
export async function disablePush(): Promise<void> {
  const sub = await currentSubscription()
  if (!sub) return
  const endpoint = sub.endpoint
  await sub.unsubscribe()
  await deletePushSubscription(endpoint)
}

/** On sign-out: the next person on this phone must not get the previous one's pushes (best effort). */
export async function forgetPushOnThisDevice(timeoutMs = 3000): Promise<void> {
  await Promise.race([disablePush().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, timeoutMs))])
}
