import { showFailToast } from 'vant'
import { i18n } from '@/i18n'
import { ApiError } from '@/api/errors'

/** The message a person should read for a failed call. */
export function errorMessage(err: unknown): string {
  const t = i18n.global.t
  if (err instanceof ApiError) {
    if (err.status === 0) return t('errors.network')
    if (err.status === 412) return t('errors.stale')
    if (err.status === 429 && !err.detail && err.retryAfter !== null) return t('errors.tooMany', { seconds: err.retryAfter })
    if (err.detail) return err.detail
    if (err.status === 404) return t('errors.notFound')
    if (err.title && err.title !== 'network-error') return err.title
  }
  return t('errors.generic')
}

export function showError(err: unknown): void {
  showFailToast({ message: errorMessage(err), wordBreak: 'break-word' })
}

export function isStale(err: unknown): boolean {
  return err instanceof ApiError && err.status === 412
}
