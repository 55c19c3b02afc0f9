/**
 * What an auto-tag rule's conditions may test (app/services/tag_rules.py, docs/api.md "Tag rules"):
 * customer fields, computed metrics and custom fields, each with its kind, the operators the kind
 * takes and, for choices, the values the server accepts. Values go to the server in its units; a
 * field with `scale` is typed in friendlier ones (yuan for cents, percent for a probability).
 */
import type { CustomField, TagRuleCondition, TagRuleConditionOp, TagRuleRun } from '@/api/types'
import { i18n } from '@/i18n'
import { RFM_SEGMENTS } from '@/utils/analytics'
import { fieldLabel, valueText } from '@/utils/labels'

export type ConditionKind = 'text' | 'choice' | 'number' | 'date' | 'bool' | 'multi'
export type ConditionGroup = 'customer' | 'metric' | 'custom'

export interface ConditionField {
  key: string
  group: ConditionGroup
  kind: ConditionKind
  label: string
  choices: { value: string; label: string }[]
  /** Server value = typed value × scale. */
  scale?: number
  /** The unit typed, after the label. */
  unit?: string
}

const COMPARE: TagRuleConditionOp[] = ['eq', 'ne', 'in', 'not_in']
const ORDER: TagRuleConditionOp[] = ['gt', 'gte', 'lt', 'lte']
const NULLS: TagRuleConditionOp[] = ['is_null', 'not_null']
export const OPS_BY_KIND: Record<ConditionKind, TagRuleConditionOp[]> = {
  text: [...COMPARE, ...NULLS],
  choice: [...COMPARE, ...NULLS],
  multi: [...COMPARE, ...NULLS],
  number: [...COMPARE, ...ORDER, ...NULLS],
  date: [...COMPARE, ...ORDER, ...NULLS],
  bool: ['eq', 'ne'],
}
export const isListOp = (op: string) => op === 'in' || op === 'not_in'
export const takesValue = (op: string) => op !== 'is_null' && op !== 'not_null'

const t = (key: string) => i18n.global.t(key)
const enumChoices = (field: string, values: readonly string[]) => values.map((value) => ({ value, label: valueText(field, value) }))

function customerFields(): ConditionField[] {
  const text = (key: string): ConditionField => ({ key, group: 'customer', kind: 'text', label: fieldLabel(key), choices: [] })
  const choice = (key: string, values: readonly string[]): ConditionField => ({
    key,
    group: 'customer',
    kind: 'choice',
    label: fieldLabel(key),
    choices: enumChoices(key, values),
  })
  return [
    choice('level', ['A', 'B', 'C']),
    text('industry'),
    text('source'),
    text('province'),
    text('city'),
    choice('gender', ['male', 'female']),
    choice('kind', ['company', 'person']),
    choice('deal_status', ['none', 'signed']),
  ]
}

function metricFields(): ConditionField[] {
  const metric = (key: string, kind: ConditionKind, extra: Partial<ConditionField> = {}): ConditionField => ({
    key,
    group: 'metric',
    kind,
    label: t(`tagRules.metrics.${key}`),
    choices: [],
    ...extra,
  })
  return [
    metric('rfm_segment', 'choice', {
      choices: RFM_SEGMENTS.map((s) => ({ value: s, label: t(`analytics.rfm.segment.${s}`) })),
    }),
    metric('pyramid_tier', 'choice', {
      choices: ['A', 'B', 'C', 'D'].map((tier) => ({ value: tier, label: i18n.global.t('analytics.pyramid.tierLabel', { tier }) })),
    }),
    metric('churn_risk', 'bool'),
    metric('lead_score', 'number', { scale: 0.01, unit: '%' }),
    metric('recency_days', 'number', { unit: t('tagRules.units.days') }),
    metric('frequency', 'number', { unit: t('tagRules.units.orders') }),
    metric('monetary_cents', 'number', { scale: 100, unit: t('tagRules.units.yuan') }),
  ]
}

const CUSTOM_KINDS: Record<string, ConditionKind> = {
  text: 'text',
  number: 'number',
  date: 'date',
  single_select: 'choice',
  multi_select: 'multi',
}

/** Every field a condition may test, customer fields first, custom fields of customers last. */
export function conditionFields(custom: CustomField[]): ConditionField[] {
  const customs = custom
    .filter((f) => f.entity === 'customer' && f.type in CUSTOM_KINDS)
    .map<ConditionField>((f) => ({
      key: `custom.${f.key}`,
      group: 'custom',
      kind: CUSTOM_KINDS[f.type]!,
      label: f.label,
      choices: (f.options ?? []).map((o) => ({ value: o, label: o })),
    }))
  return [...customerFields(), ...metricFields(), ...customs]
}

/** A condition as the form edits it: the value as typed (text), picked (list) or toggled. */
export interface ConditionRow {
  field: string
  op: TagRuleConditionOp
  /** text, number and date input */
  text: string
  /** picked choices (one for eq/ne, any number for in/not_in) */
  picked: string[]
  bool: boolean | null
}

export const emptyRow = (): ConditionRow => ({ field: 'rfm_segment', op: 'eq', text: '', picked: [], bool: null })

const round = (x: number) => Math.round(x * 1e6) / 1e6

/** Typed text → the server's number ('' and garbage stay text, for the server to name). */
function toNumber(text: string, scale = 1): number | string {
  const trimmed = text.trim()
  const n = Number(trimmed)
  return trimmed !== '' && Number.isFinite(n) ? round(n * scale) : trimmed
}

/** The condition as the API takes it. */
export function toCondition(row: ConditionRow, field: ConditionField | undefined): TagRuleCondition {
  if (!takesValue(row.op)) return { field: row.field, op: row.op }
  const kind = field?.kind ?? 'text'
  const list = isListOp(row.op)
  let value: TagRuleCondition['value']
  if (kind === 'bool') value = row.bool
  else if (kind === 'choice' || kind === 'multi') value = list ? row.picked : (row.picked[0] ?? null)
  else {
    const parts = list ? row.text.split(/[,，、]/).map((p) => p.trim()).filter(Boolean) : [row.text.trim()]
    const values = kind === 'number' ? parts.map((p) => toNumber(p, field?.scale)) : parts
    value = list ? values : (values[0] ?? null)
  }
  return { field: row.field, op: row.op, value }
}

/** A saved condition back as a form row. */
export function toRow(condition: TagRuleCondition, field: ConditionField | undefined): ConditionRow {
  const row: ConditionRow = { ...emptyRow(), field: condition.field, op: condition.op }
  const values = Array.isArray(condition.value) ? condition.value : condition.value === null || condition.value === undefined ? [] : [condition.value]
  if (field?.kind === 'bool') row.bool = typeof values[0] === 'boolean' ? values[0] : null
  else if (field?.kind === 'choice' || field?.kind === 'multi') row.picked = values.map(String)
  else {
    const shown = values.map((v) => (typeof v === 'number' && field?.scale ? round(v / field.scale) : v))
    row.text = shown.map(String).join(', ')
  }
  return row
}

/** A condition in one line, for the rule list ("RFM 分层 是 重要价值客户"). */
export function conditionText(condition: TagRuleCondition, field: ConditionField | undefined): string {
  const label = field?.label ?? condition.field
  const op = t(`tagRules.ops.${condition.op}`)
  if (!takesValue(condition.op)) return `${label} ${op}`
  const values = Array.isArray(condition.value) ? condition.value : [condition.value]
  const shown = values.map((v) => {
    if (typeof v === 'boolean') return v ? t('common.yes') : t('common.no')
    if (typeof v === 'number' && field?.scale) return `${round(v / field.scale)}${field.unit ?? ''}`
    if (typeof v === 'number') return `${v}${field?.unit ?? ''}`
    return field?.choices.find((c) => c.value === v)?.label ?? String(v)
  })
  return `${label} ${op} ${shown.join('、')}`
}

/** What a run did, for a toast. */
export function ranText(run: TagRuleRun): string {
  const done = i18n.global.t('tagRules.ran', { added: run.added, removed: run.removed })
  return run.replaced ? done + i18n.global.t('tagRules.replaced', { count: run.replaced }) : done
}
