/** Loads every op family into the op table. Importing 'wgflow' does this. */
import './sources.js';
import './elementwise.js';
