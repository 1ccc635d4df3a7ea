#!/usr/bin/env node
// The `tme` command. TME is TypeScript run directly through tsx (no build step to forget).
import { register } from "tsx/esm/api";

register();
await import("./tme.ts");
