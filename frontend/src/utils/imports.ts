/**
 * Imports (SPEC I1, app/routers/imports.py): how a refused file, a row problem and an import's state
 * read in the UI language. The server words its problems in English (`detail`, `message`); the
 * stable `code`s are translated here and the server's words are kept as the details.
 */
import { ApiError } from '@/api/errors'
import type { ImportEntity, ImportField, ImportRowError, ImportStatus } from '@/api/types'
import { currentLocale, i18n } from '@/i18n'
import { describeProblem } from './problems'

export const IMPORT_ENTITIES: ImportEntity[] = ['customers', 'contacts', 'orders']
export const FILE_ACCEPT = '.csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'
export const POLL_MS = 1500

/** CSV or XLSX by the name (the server looks at the bytes too; this only spares a useless upload). */
export function looksImportable(file: File): boolean {
  return /\.(csv|xlsx)$/i.test(file.name)
}

/** The permission an import of `entity` needs (customers: create; contacts and orders: update). */
export function importPermission(entity: ImportEntity): string {
  return entity === 'customers' ? 'customer.create' : 'customer.update'
}

export interface ImportProblem {
  title: string
  message: string
  /** The server's own words, when they add something (e.g. which line). */
  detail: string | null
}

/** A refused upload as title + message (+ the server's detail): 413, 422 `import-file`, anything else. */
export function importProblem(err: unknown): ImportProblem {
  const { t, te } = i18n.global
  const title = t('imports.problem.title')
  if (!(err instanceof ApiError)) return { title, message: describeProblem(err), detail: null }
  if (err.status === 413) return { title, message: t('imports.problem.tooLarge'), detail: null }
  if (err.slug === 'import-file') {
    const code = typeof err.extra.code === 'string' ? err.extra.code : ''
    const detail = err.detail
    if (code === 'missing_header') {
      const fields = /:\s*(.+)$/.exec(detail ?? '')?.[1]
      return {
        title,
        message: fields ? t('imports.problem.codes.missing_header', { fields }) : t('imports.problem.codes.missing_header_plain'),
        detail: null,
      }
    }
    const key = `imports.problem.codes.${code}`
    if (code && te(key)) return { title, message: t(key), detail: detail ? t('imports.problem.detail', { detail }) : null }
    return { title, message: detail || t('errors.validation'), detail: null }
  }
  return { title, message: describeProblem(err), detail: null }
}

/** A field's label in the UI language. */
export function fieldText(field: ImportField | undefined, key: string): string {
  if (!field) return key
  return currentLocale() === 'en' ? field.label_en : field.label
}

/** "不是有效的电话号码" for a row problem's code; the server's message when the code is new. */
export function rowProblemText(error: ImportRowError): string {
  const { t, te } = i18n.global
  const key = `imports.rowCodes.${error.code}`
  return te(key) ? t(key) : error.message
}

/** "第 3 行 · 手机": where a row problem is. */
export function rowProblemWhere(error: ImportRowError): string {
  const { t } = i18n.global
  const column = error.column_name || (error.column !== null ? t('imports.column', { n: error.column + 1 }) : '')
  return column ? t('imports.errorWhere', { row: error.row, column }) : t('imports.errorRow', { row: error.row })
}

export function importStatusTagType(status: ImportStatus): 'primary' | 'success' | 'danger' | 'default' {
  if (status === 'done') return 'success'
  if (status === 'failed') return 'danger'
  if (status === 'running') return 'primary'
  return 'default'
}

export function isFinished(status: ImportStatus): boolean {
  return status === 'done' || status === 'failed'
}

/** The server's `mapping` with the columns in order, for comparisons. */
export function sameMapping(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)])
  for (const k of keys) if ((a[k] ?? '') !== (b[k] ?? '')) return false
  return true
}
