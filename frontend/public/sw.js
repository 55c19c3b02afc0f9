/*
 * Kehu CRM service worker (SPEC D3, K3).
 *
 * - Web Push: shows the notifications and opens the right screen when one is tapped. Payload:
 *   {"notification_id", "kind", "title", "body", "link"} — ids and a deep link, no customer data.
 * - App shell offline: the built files (listed into PRECACHE_URLS by vite.config.ts at build time)
 *   are cached on install; navigations go to the network first and fall back to the cached
 *   index.html, hashed assets are served from the cache.
 * - The rep's recent data offline: GETs of today, customers (one at a time, with their follow-ups,
 *   contacts, timeline), visits and follow-ups under /api/v1 go to the network first; a copy of a
 *   good answer is kept in a cache of that user's own (`kehu-api-u<user id>`, the id read from the
 *   bearer token) and served only when the network fails. Auth endpoints are never cached; the app
 *   deletes the `kehu-api-*` caches on sign-out (src/offline/cache.ts).
 * Writes are never handled here: the app queues them itself (src/offline/outbox.ts).
 */
/* eslint-env serviceworker */
'use strict'

// replaced by the build (vite.config.ts, kehuServiceWorker): the build id and the files to precache
const BUILD_ID = '__KEHU_BUILD_ID__'
const PRECACHE_URLS = [] /* __KEHU_PRECACHE__ */

const SHELL_CACHE = `kehu-shell-${BUILD_ID}`
const API_CACHE_PREFIX = 'kehu-api-'
const API_CACHE_MAX_ENTRIES = 300
/** A navigation waits this long for the network before the cached shell is shown. */
const NAVIGATION_TIMEOUT_MS = 4000

/** The API reads kept for offline use (paths under /api/v1). Never /auth/*, never lists of everyone. */
const CACHEABLE_API =
  /^\/api\/v1\/(?:me|today|tag-groups|custom-fields|customers\/facets|pools|visits(?:\/\d+)?|follow-ups(?:\/\d+)?|customers\/\d+(?:\/(?:follow-ups|contacts|timeline|members|recommendations))?)$/

self.addEventListener('install', (event) => {
  self.skipWaiting()
  event.waitUntil(precache())
})

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys()
      await Promise.all(
        names.filter((n) => n.startsWith('kehu-shell-') && n !== SHELL_CACHE).map((n) => caches.delete(n)),
      )
      await self.clients.claim()
    })(),
  )
})

async function precache() {
  if (!PRECACHE_URLS.length) return // a dev server: nothing built to cache
  const cache = await caches.open(SHELL_CACHE)
  // one file failing (a flaky connection) must not cost the whole install: it is fetched when used
  await Promise.all(
    PRECACHE_URLS.map(async (url) => {
      try {
        const res = await fetch(new Request(url, { cache: 'reload' }))
        if (res.ok) await cache.put(url, res)
      } catch (e) {
        /* fetched from the network when needed */
      }
    }),
  )
}

self.addEventListener('fetch', (event) => {
  const request = event.request
  if (request.method !== 'GET') return // writes always go to the network (the app queues them)
  const url = new URL(request.url)
  if (url.origin !== self.location.origin) return
  if (url.pathname.startsWith('/api/')) {
    if (CACHEABLE_API.test(url.pathname) && !request.headers.has('Idempotency-Key')) {
      event.respondWith(networkFirstApi(event, request))
    }
    return
  }
  if (request.mode === 'navigate') {
    event.respondWith(navigation(request))
    return
  }
  if (url.pathname === '/sw.js') return
  event.respondWith(cacheFirstStatic(request, url))
})

/** The user a bearer token belongs to (its `sub`), or null: the token is only read, never trusted. */
function userOf(request) {
  const auth = request.headers.get('Authorization') || ''
  const match = /^Bearer\s+[^.]+\.([^.]+)\./i.exec(auth)
  if (!match) return null
  try {
    const b64 = match[1].replace(/-/g, '+').replace(/_/g, '/')
    const claims = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)))
    const sub = claims && claims.sub
    return typeof sub === 'string' || typeof sub === 'number' ? String(sub).replace(/[^\w.-]/g, '_') : null
  } catch (e) {
    return null
  }
}

async function trim(cache) {
  const keys = await cache.keys() // oldest write first
  const extra = keys.length - API_CACHE_MAX_ENTRIES
  for (let i = 0; i < extra; i++) await cache.delete(keys[i])
}

/** Network first; the user's cached copy only when there is no network answer at all. */
async function networkFirstApi(event, request) {
  const user = userOf(request)
  if (!user) return fetch(request)
  const cacheName = API_CACHE_PREFIX + 'u' + user
  try {
    const response = await fetch(request)
    if (response.ok && !/no-store/i.test(response.headers.get('Cache-Control') || '')) {
      const copy = response.clone()
      event.waitUntil(
        caches
          .open(cacheName)
          .then((cache) => cache.put(request.url, copy).then(() => trim(cache)))
          .catch(() => undefined),
      )
    }
    return response
  } catch (error) {
    const cache = await caches.open(cacheName)
    const hit = await cache.match(request.url, { ignoreVary: true })
    if (!hit) throw error
    const headers = new Headers(hit.headers)
    headers.set('X-Kehu-Offline', 'cache') // the app can tell a cached answer from a fresh one
    return new Response(hit.body, { status: hit.status, statusText: hit.statusText, headers })
  }
}

/** Navigations: the network (fresh deploys show at once), else the cached app shell. */
async function navigation(request) {
  const cached = () => caches.match('/index.html', { cacheName: SHELL_CACHE })
  let timer
  try {
    const network = fetch(request)
    network.catch(() => undefined) // awaited below when it matters
    const timeout = new Promise((resolve) => {
      timer = setTimeout(resolve, NAVIGATION_TIMEOUT_MS)
    })
    const first = await Promise.race([network, timeout])
    if (first) return first
    // one bar of signal: show the shell now if we have it, else keep waiting
    const shell = await cached()
    return shell || (await network)
  } catch (error) {
    const shell = await cached()
    if (shell) return shell
    throw error
  } finally {
    clearTimeout(timer)
  }
}

/** Built files: hashed names never change, so the cache answers; anything else falls through to the network. */
async function cacheFirstStatic(request, url) {
  const cache = await caches.open(SHELL_CACHE)
  const hit = await cache.match(request, { ignoreSearch: true })
  if (hit) return hit
  const response = await fetch(request)
  if (response.ok && url.pathname.startsWith('/assets/')) {
    cache.put(request, response.clone()).catch(() => undefined)
  }
  return response
}

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
      icon: '/icons/icon-192.png',
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
