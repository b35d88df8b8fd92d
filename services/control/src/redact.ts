/** Removes passwords from any connection string inside a message (for logs and API answers). */
export function redactSecrets(message: string): string {
  return message.replace(/(\w+:\/\/[^:/@\s]+):[^@\s]*@/g, '$1:***@');
}
