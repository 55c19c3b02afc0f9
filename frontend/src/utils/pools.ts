/** Words for what the pool API says in English codes and phrases (SPEC C2–C5). */
import { i18n } from '@/i18n'
import type { Customer, PoolOutcome, PoolRule } from '@/api/types'
import { formatDateTime } from './format'

const RULE_REASON = /^no (follow-up|opportunity|deal) for (\d+) days?$/
const RULE_KINDS: Record<string, PoolRule['kind']> = {
  'follow-up': 'no_follow_up',
  opportunity: 'no_opportunity',
  deal: 'no_deal',
}

/**
 * Why a customer is (or goes) in the pool: a reclaim rule's reason ("no follow-up for 30 days")
 * in the UI language; anything else (the reason given on release) as it is.
 */
export function poolReasonText(reason: string | null | undefined): string {
  if (!reason) return ''
  const { t } = i18n.global
  const m = RULE_REASON.exec(reason.trim())
  if (m) return t(`pool.rule.${RULE_KINDS[m[1]!]}`, { n: Number(m[2]) })
  if (reason === 'reclaimed') return t('pool.reclaimed')
  return reason
}

/** A rule as a sentence: "30 天未跟进（A 级 60 天，C 级 15 天）". */
export function ruleText(rule: PoolRule): string {
  const { t } = i18n.global
  const base = t(`pool.rule.${rule.kind}`, { n: rule.days })
  const levels = Object.entries(rule.level_days)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([level, days]) => t('pool.levelDays', { level, n: days }))
  return levels.length ? `${base}${t('pool.levelDaysList', { list: levels.join(t('fieldErrors.separator')) })}` : base
}

/** The localized names of hidden fields: 电话、邮箱、联系人. */
export function hiddenFieldsText(fields: readonly string[]): string {
  const { t, te } = i18n.global
  return fields.map((f) => (te(`pool.fields.${f}`) ? t(`pool.fields.${f}`) : f)).join(t('fieldErrors.separator'))
}

/** Whether the server withheld a field of this customer (it sits in a pool that hides it). */
export function isHidden(customer: Pick<Customer, 'hidden_fields'> | null | undefined, field: string): boolean {
  return !!customer?.hidden_fields?.includes(field)
}

/**
 * One customer's result of a claim / assign / move, in words. A refusal's wording comes from its
 * code and structured fields (`until` for the cooling period, `limit` for the daily limit and the
 * owned-customer cap), never from the English `detail`.
 */
export function outcomeText(result: PoolOutcome): string {
  const { t } = i18n.global
  if (result.outcome !== 'refused') return t(`pool.outcome.${result.outcome}`)
  switch (result.reason) {
    case 'cooling_period': {
      const until = formatDateTime(result.until)
      return until ? t('pool.refusal.coolingUntil', { time: until }) : t('pool.refusal.cooling_period')
    }
    case 'daily_limit':
      return result.limit != null ? t('pool.refusal.dailyLimitOf', { n: result.limit }) : t('pool.refusal.daily_limit')
    case 'owned_cap':
      return result.limit != null ? t('pool.refusal.ownedCapOf', { n: result.limit }) : t('pool.refusal.owned_cap')
    case null:
    case undefined:
      return t('pool.outcome.refused')
    default:
      return t(`pool.refusal.${result.reason}`)
  }
}
