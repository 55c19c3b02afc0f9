import { showFailToast } from 'vant'
import { ApiError, fieldName, type FieldError } from '@/api/errors'
import { describeFieldError, describeProblem, summarizeFieldErrors } from './problems'
import { i18n } from '@/i18n'

/** The message a person should read for a failed call (see `describeProblem`). */
export function errorMessage(err: unknown): string {
  return describeProblem(err)
}

export function showError(err: unknown): void {
  showFailToast({ message: errorMessage(err), wordBreak: 'break-word' })
}

/** Whose field labels a form's errors use (`customer.fields`, `contact.*`, `followUp.fields`, `visit.fields`). */
export type FormEntity = 'customer' | 'contact' | 'followUp' | 'visit' | 'opportunity' | 'tagRule' | 'apiKey' | 'webhook'

export function isStale(err: unknown): boolean {
  return err instanceof ApiError && err.status === 412
}

/**
 * A failed form submit. Field errors of fields the form shows come back as `{field: message}` for
 * the fields' `error-message`, with a toast pointing at them; the rest (errors about other fields
 * or the whole body, any other problem) is toasted. `keyOf` names an error's field (by default its
 * last name: `phones`; a form of rows may key by the whole path: `conditions.0.value`).
 */
export function formErrors(
  err: unknown,
  shows: (field: string) => boolean,
  entity: FormEntity = 'customer',
  keyOf: (error: FieldError) => string | null = fieldName,
): Record<string, string> {
  if (!(err instanceof ApiError) || !err.errors.length) {
    showError(err)
    return {}
  }
  const placed: Record<string, string> = {}
  const elsewhere: FieldError[] = []
  for (const e of err.errors) {
    const name = keyOf(e)
    if (name === null || !shows(name)) elsewhere.push(e)
    else if (!(name in placed)) placed[name] = describeFieldError(e, undefined, entity)
  }
  const message = elsewhere.length ? summarizeFieldErrors(elsewhere, undefined, entity) : i18n.global.t('errors.fixFields')
  showFailToast({ message, wordBreak: 'break-word' })
  return placed
}
