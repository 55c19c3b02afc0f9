/** Friendly names for the generated OpenAPI types used by the screens. */
import type { components } from './schema'

type Schemas = components['schemas']

export type Me = Schemas['MeOut']
export type TokenOut = Schemas['TokenOut']
export type Customer = Schemas['CustomerOut']
export type CustomerPage = Schemas['Page_CustomerOut_']
export type CustomerCreate = Schemas['CustomerCreate']
export type CustomerUpdate = Schemas['CustomerUpdate']
export type CustomerTag = Customer['tags'][number]
export type DuplicateMatch = Schemas['DuplicateMatch']
export type Facets = Schemas['FacetsOut']
export type TimelineEvent = Schemas['TimelineEventOut']
export type Contact = Schemas['ContactOut']
export type ContactCreate = Schemas['ContactCreate']
export type CustomField = Schemas['CustomFieldOut']
export type TagGroup = Schemas['TagGroupOut']

export type CustomFieldType = CustomField['type']
export type CustomFieldValue = string | number | string[] | null

export type FollowUp = Schemas['FollowUpOut']
export type FollowUpCreate = Schemas['FollowUpCreate']
export type FollowUpType = FollowUp['type']
export type CheckIn = Schemas['CheckIn']
export type Visit = Schemas['VisitOut']
export type VisitCreate = Schemas['VisitCreate']
export type VisitReschedule = Schemas['VisitReschedule']
export type VisitComplete = Schemas['VisitComplete']
export type Reminder = Visit['reminders'][number]
export type Notification = Schemas['NotificationOut']
export type NotificationSettings = Schemas['NotificationSettingsOut']
export type NotificationSettingsUpdate = Schemas['NotificationSettingsIn']
export type Today = Schemas['TodayOut']
export type CustomerBrief = Schemas['CustomerBrief']
export type RelationshipReminder = Schemas['RelationshipItem']
