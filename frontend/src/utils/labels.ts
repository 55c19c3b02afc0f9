/** Human labels for fields and values shown in details and the timeline. */
import { i18n } from '@/i18n'
import { customFieldByKey } from '@/stores/meta'
import { formatDate, formatDateTime } from './format'

const CONTACT_FIELD_KEYS: Record<string, string> = {
  name: 'contact.name',
  title: 'contact.title',
  phones: 'contact.phones',
  email: 'contact.email',
  wechat: 'contact.wechat',
  is_primary: 'contact.isPrimary',
  birth_date: 'contact.birthDate',
  notes: 'contact.notes',
}

/** Where an entity's field labels live (the API's timeline says `follow_up`, the forms `followUp`). */
const ENTITY_LABELS: Record<string, string> = {
  followUp: 'followUp',
  follow_up: 'followUp',
  visit: 'visit',
  opportunity: 'opportunity',
  tagRule: 'tagRules',
  apiKey: 'apiKeys',
  webhook: 'webhooks',
}

export function fieldLabel(field: string, entity: string = 'customer'): string {
  const { t, te } = i18n.global
  if (field.startsWith('custom_fields.')) {
    const key = field.slice('custom_fields.'.length)
    return customFieldByKey.value.get(key)?.label ?? key
  }
  if (entity === 'contact' && CONTACT_FIELD_KEYS[field]) return t(CONTACT_FIELD_KEYS[field])
  // follow-ups and visits (forms, timeline entries): their own labels first (`followUp.fields.content`)
  const own = ENTITY_LABELS[entity]
  if (own && te(`${own}.fields.${field}`)) return t(`${own}.fields.${field}`)
  const path = `customer.fields.${field}`
  if (te(path)) return t(path)
  const cf = customFieldByKey.value.get(field)
  return cf ? cf.label : field
}

const ENUM_PATHS: Record<string, string> = {
  level: 'customer.level',
  kind: 'customer.kind',
  gender: 'customer.gender',
  deal_status: 'customer.dealStatus',
  type: 'followUp.types',
}

/** A stored value as text: enums translated, lists joined, dates formatted, empty as "empty". */
export function valueText(field: string, value: unknown): string {
  const { t, te } = i18n.global
  if (value === null || value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) {
    return t('timeline.empty')
  }
  if (typeof value === 'boolean') return value ? t('common.yes') : t('common.no')
  if (Array.isArray(value)) return value.map((v) => valueText(field, v)).join('、')
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>
    if (typeof obj.name === 'string') return obj.name
    if (typeof obj.display_name === 'string') return obj.display_name
    return JSON.stringify(value)
  }
  const enumPath = ENUM_PATHS[field]
  if (enumPath && typeof value === 'string' && te(`${enumPath}.${value}`)) return t(`${enumPath}.${value}`)
  if (typeof value === 'number' && !Number.isInteger(value)) return String(Math.round(value * 1e5) / 1e5)
  if (typeof value === 'string') {
    if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return formatDate(value)
    if (/^\d{4}-\d{2}-\d{2}T/.test(value)) return formatDateTime(value)
  }
  return String(value)
}
