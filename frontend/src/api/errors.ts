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

  constructor(status: number, body: ProblemBody, retryAfter: number | null = null) {
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
  }

  /** The last path segment of the problem type, e.g. `duplicate-customer`. */
  get slug(): string {
    return this.type.split('/').pop() ?? ''
  }

  static fromResponse(response: Response, body: unknown): ApiError {
    const retryAfterHeader = response.headers.get('Retry-After')
    const retryAfter = retryAfterHeader !== null && /^\d+$/.test(retryAfterHeader) ? Number(retryAfterHeader) : null
    if (body && typeof body === 'object' && !Array.isArray(body)) {
      const problem = body as ProblemBody
      // FastAPI's default validation answer is {"detail": [...]}: treat it as field errors.
      if (Array.isArray(problem.detail)) {
        return new ApiError(response.status, { title: response.statusText, errors: problem.detail as FieldError[] }, retryAfter)
      }
      return new ApiError(response.status, problem, retryAfter)
    }
    const text = typeof body === 'string' && body.length < 300 ? body : null
    return new ApiError(response.status, { title: response.statusText, detail: text }, retryAfter)
  }

  static network(cause: unknown): ApiError {
    const err = new ApiError(0, { title: 'network-error', detail: null })
    ;(err as { cause?: unknown }).cause = cause
    return err
  }
}

export function isApiError(err: unknown): err is ApiError {
  return err instanceof ApiError
}

/**
 * Map field errors to form field names: the last string element of `loc`
 * (custom fields become `custom_fields.<key>`, list items like `phones.0` become `phones`).
 */
export function fieldErrors(err: ApiError): Record<string, string> {
  const out: Record<string, string> = {}
  for (const e of err.errors) {
    const loc = Array.isArray(e.loc) ? e.loc : []
    let name: string | undefined
    const cfIndex = loc.indexOf('custom_fields')
    if (cfIndex >= 0 && typeof loc[cfIndex + 1] === 'string') {
      name = `custom_fields.${String(loc[cfIndex + 1])}`
    } else {
      for (let i = loc.length - 1; i >= 0; i--) {
        const part = loc[i]
        if (typeof part === 'string') {
          name = part
          break
        }
      }
    }
    if (name && !(name in out)) out[name] = e.msg
  }
  return out
}
