/**
 * The inbox's live state (SPEC D4): the unread count behind the tab bar badge, and new notifications
 * as they arrive.
 *
 * Live updates come from `GET /notifications/stream` (Server-Sent Events) read with `fetch` and a
 * ReadableStream — EventSource cannot send the Authorization header. The server ends a stream after a
 * few minutes; it is then reopened after its `retry:` delay. A failed or dropped stream reconnects with
 * exponential backoff (1 s … 60 s, with jitter); after a few failures in a row the unread count is
 * also polled every 60 s until the stream is back. A stream that stays silent longer than three
 * heartbeats (the server sends one every 15 s) is treated as dropped.
 */
import { ref } from 'vue'
import { API_BASE, refreshSession } from '@/api/client'
import { tokens } from '@/api/tokens'
import { unreadCount } from '@/api/endpoints'
import type { Notification } from '@/api/types'

export const unread = ref(0)
/** `live` while the stream is open; `polling` while it is down and the count is polled. */
export const liveState = ref<'off' | 'connecting' | 'live' | 'polling'>('off')

const POLL_MS = 60_000
const SILENCE_MS = 45_000
const FAILURES_BEFORE_POLLING = 3
const MAX_BACKOFF_MS = 60_000

type Listener = (n: Notification) => void
const listeners = new Set<Listener>()

/** Called with every notification the stream delivers; returns the unsubscribe function. */
export function onNotification(listener: Listener): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

let running = false
let controller: AbortController | null = null
let retryTimer: ReturnType<typeof setTimeout> | undefined
let pollTimer: ReturnType<typeof setInterval> | undefined
let silenceTimer: ReturnType<typeof setTimeout> | undefined
let countCheckTimer: ReturnType<typeof setTimeout> | undefined
let failures = 0
/** The reconnection delay after a clean end of the stream (the server's `retry:` field). */
let retryMs = 3000

export async function refreshUnread(): Promise<void> {
  try {
    unread.value = await unreadCount()
  } catch {
    // the badge keeps its last value; the next poll or stream event corrects it
  }
}

/** After reading one notification locally (the server's `unread` event confirms it). */
export function decrementUnread(): void {
  unread.value = Math.max(0, unread.value - 1)
}

export function startNotifications(): void {
  if (running) return
  running = true
  failures = 0
  void refreshUnread()
  void connect()
  document.addEventListener('visibilitychange', onVisible)
  window.addEventListener('online', onOnline)
}

export function stopNotifications(): void {
  running = false
  controller?.abort()
  controller = null
  clearTimeout(retryTimer)
  clearTimeout(silenceTimer)
  clearTimeout(countCheckTimer)
  stopPolling()
  document.removeEventListener('visibilitychange', onVisible)
  window.removeEventListener('online', onOnline)
  liveState.value = 'off'
  unread.value = 0
}

function onVisible(): void {
  // phones suspend background tabs; come back with a fresh count and, if needed, a fresh stream
  if (document.visibilityState !== 'visible' || !running) return
  void refreshUnread()
  if (liveState.value !== 'live' && liveState.value !== 'connecting') reconnectNow()
}

function onOnline(): void {
  if (running && liveState.value !== 'live') reconnectNow()
}

function reconnectNow(): void {
  clearTimeout(retryTimer)
  controller?.abort()
  void connect()
}

function startPolling(): void {
  if (pollTimer !== undefined) return
  liveState.value = 'polling'
  void refreshUnread()
  pollTimer = setInterval(() => void refreshUnread(), POLL_MS)
}

function stopPolling(): void {
  clearInterval(pollTimer)
  pollTimer = undefined
}

function scheduleReconnect(): void {
  if (!running) return
  failures++
  if (failures >= FAILURES_BEFORE_POLLING) startPolling()
  else liveState.value = 'connecting'
  const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (failures - 1))
  const delay = base / 2 + Math.random() * (base / 2)
  clearTimeout(retryTimer)
  retryTimer = setTimeout(() => void connect(), delay)
}

function armSilenceTimer(ctrl: AbortController): void {
  clearTimeout(silenceTimer)
  silenceTimer = setTimeout(() => ctrl.abort(new DOMException('silent stream', 'TimeoutError')), SILENCE_MS)
}

async function connect(): Promise<void> {
  if (!running) return
  const access = tokens.access
  if (!access) {
    stopNotifications()
    return
  }
  const ctrl = new AbortController()
  controller = ctrl
  if (liveState.value !== 'polling') liveState.value = 'connecting'
  try {
    const res = await fetch(`${API_BASE}/notifications/stream`, {
      headers: { Authorization: `Bearer ${access}`, Accept: 'text/event-stream' },
      cache: 'no-store',
      signal: ctrl.signal,
    })
    if (res.status === 401) {
      // an expired access token: renew it once and reconnect at once; no session → stop
      if (await refreshSession()) {
        if (running && controller === ctrl) void connect()
      } else {
        stopNotifications()
      }
      return
    }
    if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`)
    failures = 0
    stopPolling()
    liveState.value = 'live'
    void refreshUnread()
    armSilenceTimer(ctrl)
    await readEvents(res.body, ctrl)
    // the server closes a stream after a while (`max_seconds`): a clean end, reconnect as it asked
    clearTimeout(silenceTimer)
    if (running && controller === ctrl) {
      clearTimeout(retryTimer)
      retryTimer = setTimeout(() => void connect(), retryMs)
    }
  } catch {
    clearTimeout(silenceTimer)
    // stopped on purpose (logout, reconnectNow) → nothing to do
    if (!running || controller !== ctrl || (ctrl.signal.aborted && ctrl.signal.reason?.name !== 'TimeoutError')) return
    scheduleReconnect()
  }
}

/** Parse `text/event-stream` (WHATWG HTML §9.2): `event:`/`data:` lines, a blank line ends an event. */
async function readEvents(stream: ReadableStream<Uint8Array>, ctrl: AbortController): Promise<void> {
  const reader = stream.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  let event = ''
  let data: string[] = []
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      armSilenceTimer(ctrl) // any bytes, heartbeat comments included, prove the stream is alive
      buffer += decoder.decode(value, { stream: true })
      let newline: number
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline)
        buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1))
        if (line === '') {
          if (data.length) dispatch(event || 'message', data.join('\n'))
          event = ''
          data = []
          continue
        }
        if (line.startsWith(':')) continue // comment (heartbeat)
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        let val = colon < 0 ? '' : line.slice(colon + 1)
        if (val.startsWith(' ')) val = val.slice(1)
        if (field === 'event') event = val
        else if (field === 'data') data.push(val)
        else if (field === 'retry' && /^\d+$/.test(val)) retryMs = Math.min(Number(val), MAX_BACKOFF_MS)
      }
    }
  } finally {
    reader.releaseLock()
  }
}

function dispatch(event: string, raw: string): void {
  let payload: unknown
  try {
    payload = JSON.parse(raw)
  } catch {
    return
  }
  if (event === 'unread') {
    const count = (payload as { count?: unknown }).count
    if (typeof count === 'number') {
      unread.value = count
      clearTimeout(countCheckTimer)
    }
  } else if (event === 'notification') {
    const n = payload as Notification
    if (typeof n?.id !== 'number') return
    for (const listener of listeners) listener(n)
    // the server follows a notification with an `unread` event; ask if it does not come soon
    clearTimeout(countCheckTimer)
    countCheckTimer = setTimeout(() => void refreshUnread(), 1500)
  }
}
