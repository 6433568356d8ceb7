// Encodes texts with @lenml/tokenizers (the transformers.js port of HF tokenizers) from a
// tokenizer.json + tokenizer_config.json folder, so the C++ tests can check that a trained
// tokenizer loads and encodes the same way outside this repo.
// Usage: node hf_tokenizer_ids.js DIR < texts.json   (a JSON array of strings)
// Prints a JSON array of id arrays (no special tokens added).
const fs = require('fs');
const path = require('path');
const root = path.join(__dirname, '..', '..', 'third_party', 'npm', 'node_modules', '@lenml');
const {TokenizerLoader} = require(path.join(root, 'tokenizers'));
const dir = process.argv[2];
const read = (name) => JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: read('tokenizer.json'),
  tokenizerConfig: read('tokenizer_config.json'),
});
const texts = JSON.parse(fs.readFileSync(0, 'utf8'));
const ids = texts.map((t) => Array.from(tokenizer.encode(t, {add_special_tokens: false})));
process.stdout.write(JSON.stringify(ids) + '\n');
