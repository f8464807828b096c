/**
 * A place whitelists come from. A source only reads and signals; validation
 * and the swap of the enforced snapshot belong to the SnapshotHolder, so both
 * stores share one reload path.
 */
export interface WhitelistSource {
  /** Names the store for /readyz and logs. Never contains a password. */
  readonly description: string;
  /**
   * Reads the whole whitelist as one consistent document (the JSON file's
   * shape, unvalidated). Rejects when the store cannot be read.
   */
  load(): Promise<unknown>;
  /**
   * Optional: a digest of the store's whole content, cheaper than a load. The
   * holder skips load and build when it equals the digest read before the
   * load it last accepted, so periodic resyncs and repeated triggers of an
   * unchanged store cost almost nothing. Rejects or gives undefined when it
   * cannot tell; the holder then loads.
   */
  revision?(): Promise<string | undefined>;
  /**
   * Starts watching, once; `changed` is a hint that the store may differ
   * from the last load (the holder re-reads, coalescing bursts). A source
   * that reconnects calls `changed` after every reconnect, since changes made
   * meanwhile were not signalled.
   */
  watch(changed: () => void): Promise<void>;
  close(): Promise<void>;
}
