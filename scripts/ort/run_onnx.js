#!/usr/bin/env node
// Runs an ONNX model in onnxruntime (CPU) on a float32 .npy batch and writes
// its outputs as float32 .npy files, the first to OUTPUT.npy and the next
// ones to the further paths given: proxykit's tests use it as an
// independent executor of the files proxykit exports.
//
// Usage: node scripts/ort/run_onnx.js MODEL.onnx INPUT.npy OUTPUT.npy [OUTPUT2.npy ...]
// (install once: cd scripts/ort && npm install --ignore-scripts)
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error(`${path}: want float32 data, header ${header}`);
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const off = start + hlen;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length));
  return { shape, data };
}

function writeNpy(path, shape, data) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

async function main() {
  const [model, input, ...outputs] = process.argv.slice(2);
  if (outputs.length === 0) throw new Error('usage: run_onnx.js MODEL.onnx INPUT.npy OUTPUT.npy [OUTPUT2.npy ...]');
  const x = readNpy(input);
  const session = await ort.InferenceSession.create(model);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
  const results = await session.run(feeds);
  if (outputs.length > session.outputNames.length) {
    throw new Error(`${model} has ${session.outputNames.length} outputs, ${outputs.length} paths were given`);
  }
  outputs.forEach((path, i) => {
    const y = results[session.outputNames[i]];
    writeNpy(path, y.dims, y.data);
  });
}

main().catch(e => { console.error(`run_onnx.js: ${e.message}`); process.exit(1); });
