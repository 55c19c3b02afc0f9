import type { ContractAction, ContractStatus } from '@/api/types'

export const CONTRACT_STATUSES: ContractStatus[] = [
  'draft',
  'pending_approval',
  'approved',
  'rejected',
  'signed',
  'active',
  'completed',
  'terminated',
  'expired',
  'void',
]

/** The order the action buttons show in (the happy path first, the destructive ones last). */
export const CONTRACT_ACTIONS: ContractAction[] = [
  'submit',
  'approve',
  'sign',
  'activate',
  'complete',
  'reject',
  'terminate',
  'void',
]

export const DESTRUCTIVE_ACTIONS = new Set<ContractAction>(['reject', 'terminate', 'void'])

export function contractStatusTagType(status: string): 'primary' | 'success' | 'warning' | 'danger' | 'default' {
  if (status === 'pending_approval') return 'warning'
  if (status === 'approved' || status === 'signed' || status === 'active') return 'primary'
  if (status === 'completed') return 'success'
  if (status === 'rejected' || status === 'terminated' || status === 'void') return 'danger'
  return 'default'
}

export function planStatusTagType(status: string): 'primary' | 'success' | 'warning' | 'danger' | 'default' {
  if (status === 'paid') return 'success'
  if (status === 'partly_paid') return 'primary'
  if (status === 'overdue') return 'danger'
  return 'default'
}
