/** How a tenant's callers prove who they are, besides the IP whitelist (contract §9). */
export type Authentication = 'token' | 'certificate' | 'certificate+token';
export const AUTHENTICATIONS: readonly Authentication[] = ['token', 'certificate', 'certificate+token'];
