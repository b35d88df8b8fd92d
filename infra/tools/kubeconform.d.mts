// Types for TypeScript callers (test/) of kubeconform.mjs.
export const name: string;
export const version: string;
/** The Kubernetes version the manifests are validated against. */
export const kubernetesVersion: string;
/** kubeconform's -schema-location for the local schemas. */
export const schemaLocation: string;
/** Builds kubeconform and lays out the schemas when missing; returns the binary's path. */
export function ensure(): Promise<string>;
/** Lays out the schemas when missing; returns their root. */
export function ensureSchemas(): Promise<string>;
