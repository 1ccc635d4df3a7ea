import { createTmeApp } from "./tme-app.js";

createTmeApp().app.synth();
