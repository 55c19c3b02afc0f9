/**
 * Writes made without a network (SPEC K3): logging a follow-up, completing a visit, editing a
 * customer. Each is kept in IndexedDB with the `Idempotency-Key` drawn once when the rep made it,
 * and sent in order when the network is back (the `online` event, app start, and a retry timer
 * that backs off). The server stores the answer to a POST under its key, so a retry whose first
 * attempt did arrive (the answer was lost) gets that answer back instead of a second record.
 *
 * Outcomes of a send:
 * - 2xx: done, the entry is removed;
 * - network error, 5xx, 408, 429, 409 idempotency-in-flight: kept and retried later (order kept);
 * - 412 on a customer edit: a conflict — the server's current values are stored next to the rep's,
 *   and the rep chooses (keep mine: sent again with the new ETag; or discard mine). If the server
 *   already holds exactly the rep's values, the edit had arrived (lost answer) and is done;
 * - 412 on a visit completion: the visit changed (e.g. rescheduled); still planned → sent again
 *   with its new ETag (and a new key: the server answers a reused key with the stored 412);
 * - any other 4xx: failed, shown with the problem's message until the rep dismisses it.
 *
 * Entries belong to the user whose token made them (the token's `sub`); only theirs are shown and
 * sent, and signing out discards them (src/stores/session.ts) so the next person sees nothing.
 */
import { computed, ref, toRaw } from 'vue'
import { API_BASE, newIdempotencyKey, refreshSession } from '@/api/client'
import { ApiError } from '@/api/errors'
import { tokens } from '@/api/tokens'
import { currentLocale } from '@/i18n'
import { errorMessage } from '@/utils/feedback'

export type OutboxKind = 'follow-up' | 'visit-complete' | 'customer-edit'
export type OutboxState = 'pending' | 'conflict' | 'failed'

export interface OutboxEntry {
  id?: number
  /** The user (token `sub`) who made the change. */
  user: string
  kind: OutboxKind
  method: 'POST' | 'PATCH'
  /** Relative to /api/v1, e.g. `/follow-ups`. */
  path: string
  body: Record<string, unknown>
  idempotencyKey: string
  /** The ETag of the version the rep saw (visits, customers). */
  ifMatch: string | null
  customerId: number | null
  visitId: number | null
  /** What the list shows (the customer's name). */
  label: string
  createdAt: string
  state: OutboxState
  attempts: number
  nextAttemptAt: number
  error: string | null
  /** Conflict: the server's current values of the fields the rep changed, and its ETag. */
  server: Record<string, unknown> | null
  serverEtag: string | null
}

export type NewWrite = Pick<OutboxEntry, 'kind' | 'method' | 'path' | 'body' | 'ifMatch' | 'customerId' | 'visitId' | 'label'>

// ----- IndexedDB (raw API, one object store) -----

const DB_NAME = 'kehu-offline'
const STORE = 'outbox'
let dbPromise: Promise<IDBDatabase> | null = null

function db(): Promise<IDBDatabase> {
  dbPromise ??= new Promise((resolve, reject) => {
    const open = indexedDB.open(DB_NAME, 1)
    open.onupgradeneeded = () => {
      const store = open.result.createObjectStore(STORE, { keyPath: 'id', autoIncrement: true })
      store.createIndex('user', 'user')
    }
    open.onsuccess = () => resolve(open.result)
    open.onerror = () => {
      dbPromise = null
      reject(open.error ?? new Error('indexedDB.open failed'))
    }
  })
  return dbPromise
}

function requestDone<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'))
  })
}

async function withStore<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const tx = (await db()).transaction(STORE, mode)
  const result = await requestDone(work(tx.objectStore(STORE)))
  await new Promise<void>((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'))
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'))
  })
  return result
}

async function entriesOf(user: string): Promise<OutboxEntry[]> {
  const all = await withStore('readonly', (s) => s.index('user').getAll(IDBKeyRange.only(user)) as IDBRequest<OutboxEntry[]>)
  return all.sort((a, b) => (a.id ?? 0) - (b.id ?? 0))
}

/** Stored as plain data: entries shown by the UI are reactive proxies, which IndexedDB cannot clone. */
const putEntry = (entry: OutboxEntry) =>
  withStore('readwrite', (s) => s.put(JSON.parse(JSON.stringify(toRaw(entry))) as OutboxEntry)) as Promise<IDBValidKey>
const deleteEntry = (id: number) => withStore('readwrite', (s) => s.delete(id))

// ----- who is signed in -----

/** The signed-in user's id from the access token (readable without a network), or null. */
export function currentUser(): string | null {
  const token = tokens.access
  const part = token?.split('.')[1]
  if (!part) return null
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/')
    const claims = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))) as { sub?: unknown }
    return claims.sub === undefined || claims.sub === null ? null : String(claims.sub)
  } catch {
    return null
  }
}

// ----- reactive state for the UI -----

/** The signed-in user's queued writes, oldest first. */
export const outbox = ref<OutboxEntry[]>([])
export const online = ref(typeof navigator === 'undefined' ? true : navigator.onLine)
export const pendingCount = computed(() => outbox.value.length)
export const conflicts = computed(() => outbox.value.filter((e) => e.state === 'conflict'))
/** Bumped whenever queued writes reached the server (screens reload what they show). */
export const outboxSynced = ref(0)

export async function refreshOutbox(): Promise<void> {
  const user = currentUser()
  try {
    outbox.value = user ? await entriesOf(user) : []
  } catch {
    outbox.value = []
  }
}

// ----- queueing -----

/** Returned by `sendOrQueue` when the write was queued instead of sent. */
export const QUEUED = Symbol('queued')

/** Queue a write made now (its Idempotency-Key is the one the first attempt used, if any). */
export async function enqueue(write: NewWrite, idempotencyKey = newIdempotencyKey()): Promise<OutboxEntry> {
  const user = currentUser()
  if (!user) throw new Error('not signed in')
  const entry: OutboxEntry = {
    ...write,
    user,
    idempotencyKey,
    createdAt: new Date().toISOString(),
    state: 'pending',
    attempts: 0,
    nextAttemptAt: 0,
    error: null,
    server: null,
    serverEtag: null,
  }
  entry.id = Number(await putEntry(entry))
  await refreshOutbox()
  scheduleRetry(1000)
  return entry
}

/**
 * Send a write now, or queue it when there is no network: offline already, or the request failed
 * without an answer. `send` gets the Idempotency-Key drawn for this action; the queued entry keeps
 * the same key, so if the failed attempt did reach the server the retry cannot write twice.
 * Answers from the server (errors included) are the caller's, as before.
 */
export async function sendOrQueue<T>(write: NewWrite, send: (idempotencyKey: string) => Promise<T>): Promise<T | typeof QUEUED> {
  const key = newIdempotencyKey()
  if (!navigator.onLine) {
    await enqueue(write, key)
    return QUEUED
  }
  try {
    return await send(key)
  } catch (err) {
    if (err instanceof ApiError && err.status === 0) {
      await enqueue(write, key)
      return QUEUED
    }
    throw err
  }
}

// ----- sending -----

async function call(method: string, path: string, init: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Response> {
  const build = () => {
    const headers: Record<string, string> = {
      Accept: 'application/json',
      'Accept-Language': currentLocale() === 'en' ? 'en' : 'zh-CN, zh;q=0.9, en;q=0.5',
      ...init.headers,
    }
    if (tokens.access) headers.Authorization = `Bearer ${tokens.access}`
    if (init.body !== undefined) headers['Content-Type'] = 'application/json'
    return fetch(`${API_BASE}${path}`, {
      method,
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      cache: 'no-store',
    })
  }
  let res = await build()
  if (res.status === 401 && (await refreshSession())) res = await build()
  return res
}

async function problemOf(res: Response): Promise<ApiError> {
  let body: unknown = null
  try {
    body = await res.clone().json()
  } catch {
    body = await res.text().catch(() => null)
  }
  return ApiError.fromResponse(res, body)
}

/** The server's value of a field the rep changed, comparable with what the rep sent. */
function serverValue(customer: Record<string, unknown>, field: string, mine: unknown): unknown {
  if (field === 'tag_ids') {
    const tags = (customer.tags ?? []) as { id: number }[]
    return tags.map((tag) => tag.id).sort((a, b) => a - b)
  }
  if (field === 'custom_fields') {
    const values = (customer.custom_fields ?? {}) as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (const key of Object.keys((mine ?? {}) as object)) out[key] = values[key] ?? null
    return out
  }
  return customer[field] ?? null
}

export function normalized(field: string, value: unknown): string {
  if (field === 'tag_ids' && Array.isArray(value)) return JSON.stringify([...(value as number[])].sort((a, b) => a - b))
  return JSON.stringify(value ?? null)
}

type Outcome = 'done' | 'retry' | 'again' | 'stop' | 'kept'

async function sendOne(entry: OutboxEntry): Promise<Outcome> {
  const headers: Record<string, string> = { 'Idempotency-Key': entry.idempotencyKey }
  if (entry.ifMatch) headers['If-Match'] = entry.ifMatch
  let res: Response
  try {
    res = await call(entry.method, entry.path, { body: entry.body, headers })
  } catch {
    return 'retry' // no answer: the same key goes again
  }
  if (res.ok) return 'done'
  const problem = await problemOf(res)
  if (res.status >= 500 || res.status === 408 || res.status === 429) return 'retry'
  if (res.status === 409 && problem.slug === 'idempotency-in-flight') return 'retry'
  if (res.status === 401) return 'stop' // the session ended: kept until the rep signs in again
  if (res.status === 412 && entry.kind === 'customer-edit' && entry.customerId !== null) {
    const current = await call('GET', `/customers/${entry.customerId}`)
    if (!current.ok) return current.status >= 500 ? 'retry' : fail(entry, await problemOf(current))
    const data = (await current.json()) as Record<string, unknown>
    const server: Record<string, unknown> = {}
    for (const [field, mine] of Object.entries(entry.body)) server[field] = serverValue(data, field, mine)
    const same = Object.entries(entry.body).every(([f, mine]) => normalized(f, mine) === normalized(f, server[f]))
    if (same) return 'done' // what the rep wanted is what the server has (an earlier attempt arrived)
    entry.state = 'conflict'
    entry.server = server
    entry.serverEtag = current.headers.get('ETag')
    entry.error = null
    await putEntry(entry)
    return 'kept'
  }
  if (res.status === 412 && entry.kind === 'visit-complete' && entry.visitId !== null && entry.attempts < 20) {
    const current = await call('GET', `/visits/${entry.visitId}`)
    if (current.ok) {
      const visit = (await current.json()) as { status?: string }
      if (visit.status === 'planned' && current.headers.get('ETag')) {
        entry.ifMatch = current.headers.get('ETag')
        entry.idempotencyKey = newIdempotencyKey()
        entry.attempts++
        await putEntry(entry)
        return 'again'
      }
    }
  }
  return fail(entry, problem)
}

async function fail(entry: OutboxEntry, problem: ApiError): Promise<Outcome> {
  entry.state = 'failed'
  entry.error = errorMessage(problem)
  await putEntry(entry)
  return 'kept'
}

let draining: Promise<void> | null = null
let retryTimer: ReturnType<typeof setTimeout> | undefined
let failures = 0

function scheduleRetry(delayMs: number): void {
  clearTimeout(retryTimer)
  retryTimer = setTimeout(() => void drainOutbox(), delayMs)
}

async function drainOnce(): Promise<void> {
  const user = currentUser()
  if (!user) return
  let sentSome = false
  try {
    for (const entry of await entriesOf(user)) {
      if (entry.state !== 'pending') continue // conflicts and failures wait for the rep
      let outcome = await sendOne(entry)
      while (outcome === 'again') outcome = await sendOne(entry)
      if (outcome === 'done') {
        await deleteEntry(entry.id!)
        sentSome = true
        failures = 0
      } else if (outcome === 'retry') {
        entry.attempts++
        await putEntry(entry)
        failures++
        // 2 s, 4 s, 8 s … up to a minute, with some jitter so phones do not retry in step
        scheduleRetry(Math.min(60_000, 2000 * 2 ** Math.min(failures - 1, 5)) * (0.8 + Math.random() * 0.4))
        return // later entries wait: they are sent in the order they were made
      } else if (outcome === 'stop') {
        return
      } else {
        sentSome = true // a conflict or failure to show
      }
    }
  } finally {
    await refreshOutbox()
    if (sentSome) outboxSynced.value++
  }
}

/** Send what is queued, in order (one drain at a time, across tabs where Web Locks exist). */
export function drainOutbox(): Promise<void> {
  if (draining) return draining
  if (!navigator.onLine) return Promise.resolve()
  const run = async () => {
    const locks = (navigator as Navigator & { locks?: LockManager }).locks
    if (locks) await locks.request('kehu-outbox', drainOnce)
    else await drainOnce()
  }
  draining = run()
    .catch(() => scheduleRetry(10_000))
    .finally(() => {
      draining = null
    })
  return draining
}

// ----- the rep's choices -----

/** Conflict → keep mine: send the rep's values again over the version the server has now. */
export async function keepMine(shown: OutboxEntry): Promise<void> {
  const entry = JSON.parse(JSON.stringify(toRaw(shown))) as OutboxEntry
  entry.state = 'pending'
  entry.ifMatch = entry.serverEtag
  // a fresh key: the server keeps the 412 it answered under the old one
  entry.idempotencyKey = newIdempotencyKey()
  entry.server = null
  entry.serverEtag = null
  entry.attempts = 0
  await putEntry(entry)
  await refreshOutbox()
  await drainOutbox()
}

/** Conflict → discard mine, or a failed write dismissed. */
export async function discard(entry: OutboxEntry): Promise<void> {
  if (entry.id !== undefined) await deleteEntry(entry.id)
  await refreshOutbox()
}

/** Sign-out: this user's queued writes go (the next person on the phone must not see them). */
export async function discardAllOfCurrentUser(): Promise<void> {
  const user = currentUser()
  if (!user) return
  for (const entry of await entriesOf(user).catch(() => [])) await deleteEntry(entry.id!)
  outbox.value = []
}

let started = false

/** App start: show and send what is queued; again whenever the network comes back. */
export function startOutbox(): void {
  if (started || typeof window === 'undefined' || typeof indexedDB === 'undefined') return
  started = true
  window.addEventListener('online', () => {
    online.value = true
    failures = 0
    void drainOutbox()
  })
  window.addEventListener('offline', () => {
    online.value = false
  })
  void refreshOutbox().then(() => drainOutbox())
}
