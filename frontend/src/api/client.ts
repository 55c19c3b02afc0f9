/**
 * The one HTTP client of the SPA: openapi-fetch typed by the generated `schema.d.ts`.
 *
 * - base URL `/api/v1` (paths in the generated schema carry the prefix; `ApiPaths` strips it)
 * - bearer token on every call; on 401 one refresh (`POST /auth/refresh`, single flight) and one retry,
 *   otherwise the session ends and the app goes to /login
 * - an `Idempotency-Key` on every POST (kept on the retry: it is the same logical request)
 * - failures become `ApiError` (problem+json), reads expose the `ETag` for later `If-Match`
 */
import createClient, { type Middleware } from 'openapi-fetch'
import type { paths } from './schema'
import { ApiError } from './errors'
import { tokens, type TokenPair } from './tokens'
import { currentLocale } from '@/i18n'

export const API_BASE = '/api/v1'

type StripPrefix<T, P extends string> = {
  [K in keyof T as K extends `${P}${infer Rest}` ? Rest : never]: T[K]
}
/** The API's paths relative to `API_BASE`. */
export type ApiPaths = StripPrefix<paths, typeof API_BASE>

let onSessionEnded: (() => void) | null = null

/** Called when the session cannot be renewed (the router sends the user to /login). */
export function setSessionEndedHandler(handler: () => void): void {
  onSessionEnded = handler
}

export function newIdempotencyKey(): string {
  if (typeof crypto !== 'undefined' && typeof crypto.randomUUID === 'function') return crypto.randomUUID()
  // crypto.randomUUID needs a secure context; fall back for plain-http LAN testing
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  bytes[6] = (bytes[6]! & 0x0f) | 0x40
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

function isAuthPath(url: string): boolean {
  return new URL(url, window.location.origin).pathname.startsWith(`${API_BASE}/auth/`)
}

let refreshInFlight: Promise<boolean> | null = null

/** Trade the refresh token for a new pair; concurrent 401s share one refresh. */
export function refreshSession(): Promise<boolean> {
  const refreshToken = tokens.refresh
  if (!refreshToken) return Promise.resolve(false)
  if (!refreshInFlight) {
    refreshInFlight = (async () => {
      try {
        const res = await fetch(`${API_BASE}/auth/refresh`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'Idempotency-Key': newIdempotencyKey() },
          body: JSON.stringify({ refresh_token: refreshToken }),
        })
        if (!res.ok) return false
        tokens.store((await res.json()) as TokenPair)
        return true
      } catch {
        return false
      } finally {
        refreshInFlight = null
      }
    })()
  }
  return refreshInFlight
}

function endSession(): void {
  tokens.clear()
  onSessionEnded?.()
}

async function fetchWithRefresh(request: Request): Promise<Response> {
  const authCall = isAuthPath(request.url)
  const hadToken = request.headers.has('Authorization')
  // keep an unread copy of the request (its body) for the retry after a refresh
  const spare = authCall ? null : request.clone()
  let response: Response
  try {
    response = await fetch(request)
  } catch (cause) {
    throw ApiError.network(cause, request.url)
  }
  if (response.status !== 401 || authCall || !spare) return response
  if (hadToken && (await refreshSession())) {
    spare.headers.set('Authorization', `Bearer ${tokens.access ?? ''}`)
    try {
      response = await fetch(spare)
    } catch (cause) {
      throw ApiError.network(cause, request.url)
    }
    if (response.status !== 401) return response
  }
  endSession()
  return response
}

const authAndIdempotency: Middleware = {
  onRequest({ request }) {
    const access = tokens.access
    if (access && !request.headers.has('Authorization')) {
      request.headers.set('Authorization', `Bearer ${access}`)
    }
    // lets the server word its problem details in the UI language (where it supports that)
    request.headers.set('Accept-Language', currentLocale() === 'en' ? 'en' : 'zh-CN, zh;q=0.9, en;q=0.5')
    if (request.method === 'POST' && !request.headers.has('Idempotency-Key')) {
      request.headers.set('Idempotency-Key', newIdempotencyKey())
    }
    return request
  },
}

export const api = createClient<ApiPaths>({
  baseUrl: `${window.location.origin}${API_BASE}`,
  fetch: fetchWithRefresh,
  // repeatable filters (tag_id) as tag_id=1&tag_id=2
  querySerializer: { array: { style: 'form', explode: true } },
})
api.use(authAndIdempotency)

export interface ApiResult<T> {
  data: T
  /** The `ETag` of a read, to send back as `If-Match`. */
  etag: string | null
  response: Response
}

type FetchOutcome<T> = { data?: T; error?: unknown; response: Response }

/** Turn an openapi-fetch answer into data (+ ETag) or throw an `ApiError`. */
export async function unwrap<T>(call: Promise<FetchOutcome<T>>): Promise<ApiResult<T>> {
  const { data, error, response } = await call
  if (!response.ok) throw ApiError.fromResponse(response, error)
  return { data: data as T, etag: response.headers.get('ETag'), response }
}

/** Same as `unwrap` but only the body. */
export async function body<T>(call: Promise<FetchOutcome<T>>): Promise<T> {
  return (await unwrap(call)).data
}
