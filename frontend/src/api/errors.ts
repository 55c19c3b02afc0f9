/** One field error of an RFC 9457 problem (FastAPI style `loc`). */
export interface FieldError {
  loc: (string | number)[]
  msg: string
  type?: string
}

/** Problem details (RFC 9457) plus whatever extension members the server adds. */
export interface ProblemBody {
  type?: string
  title?: string
  status?: number
  detail?: string | null
  errors?: FieldError[]
  [extra: string]: unknown
}

/** The `type` of the `ApiError` a failed fetch (no answer at all) becomes. */
export const NETWORK_ERROR = 'about:network-error'

/** `https://host/api/v1/auth/token?x=1` → `/auth/token` ('' for anything else). */
function apiEndpoint(url: string): string {
  if (!url) return ''
  try {
    const path = new URL(url, window.location.origin).pathname
    const at = path.indexOf('/api/v1/')
    return at >= 0 ? path.slice(at + '/api/v1'.length) : ''
  } catch {
    return ''
  }
}

/** Every failed API call surfaces as one of these. `status` 0 = the network failed. */
export class ApiError extends Error {
  readonly status: number
  readonly type: string
  readonly title: string
  readonly detail: string | null
  readonly errors: FieldError[]
  /** Extension members, e.g. `duplicates` of a `duplicate-customer` problem. */
  readonly extra: Record<string, unknown>
  readonly retryAfter: number | null
  /** The API path that answered, relative to `/api/v1` (e.g. `/auth/token`); '' when unknown. */
  readonly endpoint: string

  constructor(status: number, body: ProblemBody, retryAfter: number | null = null, endpoint = '') {
    const { type, title, status: _status, detail, errors, ...extra } = body
    super(detail || title || `HTTP ${status}`)
    this.name = 'ApiError'
    this.status = status
    this.type = type ?? 'about:blank'
    this.title = title ?? ''
    this.detail = detail ?? null
    this.errors = Array.isArray(errors) ? errors : []
    this.extra = extra
    this.retryAfter = retryAfter
    this.endpoint = endpoint
  }

  /** The last path segment of the problem type, e.g. `duplicate-customer`. */
  get slug(): string {
    return this.type.split('/').pop() ?? ''
  }

  static fromResponse(response: Response, body: unknown): ApiError {
    const retryAfterHeader = response.headers.get('Retry-After')
    const retryAfter = retryAfterHeader !== null && /^\d+$/.test(retryAfterHeader.trim()) ? Number(retryAfterHeader) : null
    const endpoint = apiEndpoint(response.url)
    if (body && typeof body === 'object' && !Array.isArray(body)) {
      const problem = body as ProblemBody
      // FastAPI's default validation answer is {"detail": [...]}: treat it as field errors.
      if (Array.isArray(problem.detail)) {
        const errors = problem.detail as FieldError[]
        return new ApiError(response.status, { title: response.statusText, errors }, retryAfter, endpoint)
      }
      return new ApiError(response.status, problem, retryAfter, endpoint)
    }
    const text = typeof body === 'string' && body.length < 300 ? body : null
    return new ApiError(response.status, { title: response.statusText, detail: text }, retryAfter, endpoint)
  }

  static network(cause: unknown, url = ''): ApiError {
    const err = new ApiError(0, { type: NETWORK_ERROR, title: 'network-error', detail: null }, null, apiEndpoint(url))
    ;(err as { cause?: unknown }).cause = cause
    return err
  }
}

export function isApiError(err: unknown): err is ApiError {
  return err instanceof ApiError
}

/** Parts of `loc` that say where in the request the error is, not which field. */
const LOCATIONS = new Set(['body', 'query', 'path', 'header', 'cookie'])

/**
 * The form field a field error belongs to: the last string element of `loc`
 * (`["body","phones",0]` → `phones`; custom fields become `custom_fields.<key>` whether the server
 * sends `["body","custom_fields","budget"]` or `["body","custom_fields.budget"]`).
 * Null when the error is about the request as a whole (`["body"]`).
 */
export function fieldName(error: FieldError): string | null {
  const loc = Array.isArray(error.loc) ? error.loc : []
  const cfIndex = loc.indexOf('custom_fields')
  if (cfIndex >= 0 && typeof loc[cfIndex + 1] === 'string') return `custom_fields.${String(loc[cfIndex + 1])}`
  for (let i = loc.length - 1; i >= 0; i--) {
    const part = loc[i]
    if (typeof part === 'string') return i === 0 && LOCATIONS.has(part) ? null : part
  }
  return null
}
