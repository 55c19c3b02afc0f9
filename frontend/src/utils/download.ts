/**
 * Saving a file the API sent (an export, an import's error report). The SPA fetches it itself — the
 * API wants the bearer token, which a plain link cannot carry — and hands the browser a Blob through
 * an object URL and a temporary `<a download>`.
 */
import type { DownloadedFile } from '@/api/endpoints'

export function saveFile(file: DownloadedFile, fallbackName: string): void {
  const url = URL.createObjectURL(file.blob)
  const link = document.createElement('a')
  link.href = url
  link.download = file.fileName || fallbackName
  link.rel = 'noopener'
  link.style.display = 'none'
  document.body.appendChild(link)
  link.click()
  link.remove()
  // the download has started once click() returns; keep the URL a little for slow browsers
  setTimeout(() => URL.revokeObjectURL(url), 60_000)
}
