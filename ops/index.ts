/** Loads every op family into the op table. Importing 'wgflow' does this. */
import './sources.js';
import './elementwise.js';
import './movement.js';
import './reduce.js';
import './softmax.js';
import './losses.js';
import './dropout.js';
import './conv2d-grad.js';
import './pool.js';
import './boxes.js';
import './anchors.js';
import './sort.js';
import './nms.js';
import './roi-pool.js';
import './roi-align.js';
import './matmul.js';
import './conv2d.js';
