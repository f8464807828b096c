// Types of build-stamp.mjs (plain JavaScript, run before tsx), for the tests.
export declare const STAMP: string;
export declare function sourceFiles(root: string): string[];
export declare function sourcesDigest(root: string): string;
export declare function distIsFresh(root: string): boolean;
