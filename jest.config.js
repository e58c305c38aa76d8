import { createDefaultEsmPreset } from "ts-jest";

const preset = createDefaultEsmPreset({ tsconfig: "tsconfig.json" });

export default {
  ...preset,
  testEnvironment: "<rootDir>/test/env/host-typed-arrays.cjs",
  roots: ["<rootDir>/test"],
  setupFiles: ["<rootDir>/src/common/polyfill.ts"],
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  testTimeout: 60000,
};
