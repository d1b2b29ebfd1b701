import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One GPU device per worker process; lavapipe already uses every core.
    pool: 'forks',
    maxWorkers: 2,
    // Hang guards only (no test asserts a time). On a fresh machine Mesa compiles every pipeline on
    // first use, which makes the first step of a Faster R-CNN program take minutes on 2 cores.
    testTimeout: 900_000,
    hookTimeout: 900_000,
  },
});
