import { ensureDashboardBuilt } from "../functions/dashboard/build.js";
import { createTmeApp } from "./tme-app.js";

// The dashboard function bundles functions/dashboard/dist: build it first if its sources changed.
await ensureDashboardBuilt();
createTmeApp().app.synth();
