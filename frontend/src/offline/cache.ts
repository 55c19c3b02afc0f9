/**
 * The service worker (public/sw.js) keeps copies of the rep's recent API reads in caches named
 * `kehu-api-u<user id>`. Signing out deletes them all, so the next person on this phone can never
 * be shown the previous one's customers, even offline.
 */
export const API_CACHE_PREFIX = 'kehu-api-'

export async function clearApiCaches(): Promise<void> {
  if (typeof caches === 'undefined') return
  try {
    const names = await caches.keys()
    await Promise.all(names.filter((n) => n.startsWith(API_CACHE_PREFIX)).map((n) => caches.delete(n)))
  } catch {
    // storage unavailable (private mode): nothing was cached either
  }
}
