import { ref } from 'vue'

const ACCESS_KEY = 'kehu.access_token'
const REFRESH_KEY = 'kehu.refresh_token'

export interface TokenPair {
  access_token: string
  refresh_token: string
}

/** Reactive "is someone logged in" flag, mirrored from localStorage. */
export const isLoggedIn = ref(localStorage.getItem(ACCESS_KEY) !== null)

export const tokens = {
  get access(): string | null {
    return localStorage.getItem(ACCESS_KEY)
  },
  get refresh(): string | null {
    return localStorage.getItem(REFRESH_KEY)
  },
  store(pair: TokenPair): void {
    localStorage.setItem(ACCESS_KEY, pair.access_token)
    localStorage.setItem(REFRESH_KEY, pair.refresh_token)
    isLoggedIn.value = true
  },
  clear(): void {
    localStorage.removeItem(ACCESS_KEY)
    localStorage.removeItem(REFRESH_KEY)
    isLoggedIn.value = false
  },
}
