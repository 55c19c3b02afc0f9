/*
 * Kehu CRM service worker (SPEC D3, K3): shows Web Push notifications and opens the right screen
 * when one is tapped. Payload: {"notification_id", "kind", "title", "body", "link"} — ids and a deep
 * link, no customer data. No offline caching yet (no fetch handler): the network is always used.
 */
/* eslint-env serviceworker */
'use strict'

self.addEventListener('install', () => {
  self.skipWaiting()
})

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim())
})

function safeLink(link) {
  return typeof link === 'string' && link.startsWith('/') && !link.startsWith('//') ? link : '/notifications'
}

self.addEventListener('push', (event) => {
  let payload = {}
  if (event.data) {
    try {
      payload = event.data.json()
    } catch (e) {
      payload = { title: event.data.text() }
    }
  }
  const title = payload.title || 'Kehu CRM'
  const tag = payload.notification_id != null ? String(payload.notification_id) : undefined
  event.waitUntil(
    self.registration.showNotification(title, {
      body: payload.body || '',
      tag,
      renotify: Boolean(tag),
      icon: '/favicon.svg',
      badge: '/favicon.svg',
      data: { link: safeLink(payload.link), notification_id: payload.notification_id, kind: payload.kind },
    }),
  )
})

self.addEventListener('notificationclick', (event) => {
  event.notification.close()
  const data = event.notification.data || {}
  const link = safeLink(data.link)
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true })
      const client = windows.find((c) => new URL(c.url).origin === self.location.origin)
      if (client) {
        await client.focus()
        try {
          // the app routes in place (keeps its state) and marks the notification read
          client.postMessage({ type: 'kehu:navigate', link, notification_id: data.notification_id })
        } catch (e) {
          await client.navigate(link)
        }
        return
      }
      await self.clients.openWindow(link)
    })(),
  )
})
