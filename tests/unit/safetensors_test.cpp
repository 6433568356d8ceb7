#include "format/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../common/temp_dir.h"
#include "core/mapped_file.h"

namespace vila {
namespace {

namespace fs = std::filesystem;
using vila::testing::TempDir;

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// u64 little-endian length + header + `data_bytes` bytes of data (values i & 0xff).
std::vector<uint8_t> make_file(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<uint8_t>(i));
  return out;
}

std::string as_string(const std::vector<uint8_t>& bytes) {
  return std::string(bytes.begin(), bytes.end());
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

StatusOr<std::unique_ptr<SafetensorsFile>> parse_bytes(const std::vector<uint8_t>& bytes) {
  return SafetensorsFile::parse(bytes.data(), bytes.size(), "bad.safetensors");
}

// Parses `header` + `data_bytes` and expects an error of `code` mentioning the label and `needle`.
void expect_error(const std::string& header, size_t data_bytes, StatusCode code,
                  const std::string& needle) {
  const std::vector<uint8_t> bytes = make_file(header, data_bytes);
  auto result = parse_bytes(bytes);
  ASSERT_FALSE(result.ok()) << "header accepted: " << header;
  EXPECT_EQ(result.status().code(), code) << result.status().to_string();
  EXPECT_NE(result.status().message().find("bad.safetensors"), std::string::npos)
      << result.status().message();
  EXPECT_NE(result.status().message().find(needle), std::string::npos)
      << "'" << needle << "' not in: " << result.status().message();
}

const DType kStorableDTypes[] = {DType::kF32,    DType::kBF16, DType::kF16, DType::kF8E4M3,
                                 DType::kF8E5M2, DType::kI8,   DType::kI32, DType::kI64,
                                 DType::kU8,     DType::kBool};

// ---- round trips ----

TEST(Safetensors, RoundTripEachDType) {
  TempDir dir;
  for (DType dtype : kStorableDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const Shape shape{2, 3};
    const std::vector<uint8_t> data = pattern(static_cast<size_t>(dtype_bytes(dtype, 6)), 3);
    SafetensorsWriter writer;
    ASSERT_TRUE(writer.add("w", dtype, shape, data.data(), data.size()).ok());
    const std::string path = dir.file(std::string(dtype_name(dtype)) + ".safetensors");
    ASSERT_TRUE(writer.write(path).ok());

    auto file = SafetensorsFile::open(path);
    ASSERT_TRUE(file.ok()) << file.status().to_string();
    ASSERT_EQ((*file)->entries().size(), 1u);
    const SafetensorsEntry& e = (*file)->entries().at("w");
    EXPECT_EQ(e.dtype, dtype);
    EXPECT_EQ(e.shape, shape);
    EXPECT_EQ(e.file, path);
    ASSERT_EQ(e.nbytes, data.size());
    EXPECT_EQ(std::memcmp(e.data, data.data(), data.size()), 0);
    EXPECT_EQ(e.view().nbytes(), static_cast<int64_t>(data.size()));

    // Writing what was read gives identical bytes.
    SafetensorsWriter again;
    ASSERT_TRUE(again.add("w", e.dtype, e.shape, e.data, e.nbytes).ok());
    const std::string path2 = path + ".2";
    ASSERT_TRUE(again.write(path2).ok());
    EXPECT_EQ(read_bytes(path), read_bytes(path2));
  }
}

TEST(Safetensors, RoundTripMixedFileIsByteIdenticalAndAligned) {
  TempDir dir;
  SafetensorsWriter writer;
  const std::vector<uint8_t> a = pattern(3 * 2, 1), b = pattern(5 * 4, 2), c = pattern(8, 3),
                             d = pattern(1, 4);
  ASSERT_TRUE(writer.add("layer.a", DType::kBF16, Shape{3}, a.data(), a.size()).ok());
  ASSERT_TRUE(writer.add("layer.b", DType::kF32, Shape{5, 1, 1, 1}, b.data(), b.size()).ok());
  ASSERT_TRUE(writer.add("layer.c", DType::kI64, Shape{}, c.data(), c.size()).ok());
  ASSERT_TRUE(writer.add("layer.d", DType::kBool, Shape{1}, d.data(), d.size()).ok());
  ASSERT_TRUE(writer.add("layer.empty", DType::kF16, Shape{0, 4}, nullptr, 0).ok());
  writer.set_metadata("format", "pt");
  writer.set_metadata("a key", "with \"quotes\" and \\ and \n");
  const std::string path = dir.file("mixed.safetensors");
  ASSERT_TRUE(writer.write(path).ok());

  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const auto& entries = (*file)->entries();
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->metadata().at("a key"), "with \"quotes\" and \\ and \n");
  EXPECT_EQ(entries.at("layer.c").shape.rank, 0);
  EXPECT_EQ(entries.at("layer.c").shape.numel(), 1);
  EXPECT_EQ(entries.at("layer.empty").nbytes, 0u);
  EXPECT_EQ(std::memcmp(entries.at("layer.b").data, b.data(), b.size()), 0);

  // Every tensor is aligned to its element size within the file (and so within the mapping).
  const std::vector<uint8_t> bytes = read_bytes(path);
  for (const auto& [name, e] : entries) {
    const auto align = static_cast<uintptr_t>(std::max(1, dtype_info(e.dtype).bits / 8));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(e.data) % align, 0u) << name;
  }

  SafetensorsWriter again;
  for (const auto& [key, value] : (*file)->metadata()) again.set_metadata(key, value);
  for (const auto& [name, e] : entries) {
    ASSERT_TRUE(again.add(name, e.dtype, e.shape, e.data, e.nbytes).ok());
  }
  auto serialized = again.serialize();
  ASSERT_TRUE(serialized.ok());
  EXPECT_EQ(*serialized, bytes);
}

// ---- byte layout of the Python safetensors library ----

TEST(Safetensors, MatchesReferenceLayoutSingleTensor) {
  std::vector<float> values = {0, 1, 2, 3, 4, 5};
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.add("attn.0", DType::kF32, Shape{1, 2, 3}, values.data(), 24).ok());
  auto bytes = writer.serialize();
  ASSERT_TRUE(bytes.ok());
  const std::string header = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(header.size(), 64u);  // already a multiple of 8: no padding
  std::vector<uint8_t> expected = make_file(header, 0);
  const auto* raw = reinterpret_cast<const uint8_t*>(values.data());
  expected.insert(expected.end(), raw, raw + 24);
  EXPECT_EQ(*bytes, expected);
}

TEST(Safetensors, MatchesReferenceLayoutPadding) {
  std::vector<float> values = {0, 1, 2, 3, 4, 5};
  SafetensorsWriter writer;
  ASSERT_TRUE(writer.add("attn0", DType::kF32, Shape{1, 1, 2, 3}, values.data(), 24).ok());
  auto bytes = writer.serialize();
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->size(), 8u + 72u + 24u);
  EXPECT_EQ((*bytes)[0], 72);
  EXPECT_EQ(as_string(*bytes).substr(8, 72),
            R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})"
            "       ");
}

TEST(Safetensors, MatchesReferenceLayoutEmpty) {
  SafetensorsWriter writer;
  auto bytes = writer.serialize();
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, make_file("{}      ", 0));
  writer.set_metadata("framework", "pt");
  bytes = writer.serialize();
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, make_file(R"({"__metadata__":{"framework":"pt"}})"
                              "     ",
                              0));
  auto parsed = parse_bytes(*bytes);
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE((*parsed)->entries().empty());
}

TEST(Safetensors, MatchesReferenceLayoutMetadataAndOrder) {
  SafetensorsWriter writer;
  const std::vector<uint8_t> f32 = pattern(16, 0), bf16 = pattern(4, 1), i64 = pattern(8, 2);
  ASSERT_TRUE(writer.add("name", DType::kF32, Shape{2, 2}, f32.data(), f32.size()).ok());
  ASSERT_TRUE(writer.add("a_bf16", DType::kBF16, Shape{2}, bf16.data(), bf16.size()).ok());
  ASSERT_TRUE(writer.add("z_i64", DType::kI64, Shape{1}, i64.data(), i64.size()).ok());
  ASSERT_TRUE(writer.add("b", DType::kF32, Shape{0}, nullptr, 0).ok());
  writer.set_metadata("format", "pt");
  auto bytes = writer.serialize();
  ASSERT_TRUE(bytes.ok());
  // Descending dtype alignment (I64 > F32 > BF16), then by name; "__metadata__" first.
  std::string header = R"({"__metadata__":{"format":"pt"},)"
                       R"("z_i64":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},)"
                       R"("name":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},)"
                       R"("a_bf16":{"dtype":"BF16","shape":[2],"data_offsets":[24,28]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<uint8_t> expected = make_file(header, 0);
  for (const auto* part : {&i64, &f32, &bf16})
    expected.insert(expected.end(), part->begin(), part->end());
  EXPECT_EQ(as_string(*bytes), as_string(expected));
}

TEST(Safetensors, WriterRejectsBadInput) {
  SafetensorsWriter writer;
  const std::vector<uint8_t> data(16);
  ASSERT_TRUE(writer.add("x", DType::kF32, Shape{2, 2}, data.data(), 16).ok());
  EXPECT_EQ(writer.add("x", DType::kF32, Shape{2, 2}, data.data(), 16).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.add("y", DType::kF32, Shape{2, 3}, data.data(), 16).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.add("__metadata__", DType::kU8, Shape{1}, data.data(), 1).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.add("q", DType::kI4Packed, Shape{4}, data.data(), 2).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.add("neg", DType::kU8, Shape{-1}, data.data(), 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.add("null", DType::kU8, Shape{1}, nullptr, 1).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.add(std::string("bad\xff utf8"), DType::kU8, Shape{1}, data.data(), 1).code(),
            StatusCode::kInvalidArgument);
  writer.set_metadata("k", std::string("\xc3"));
  auto bytes = writer.serialize();
  EXPECT_FALSE(bytes.ok());
  TempDir dir;
  Status s = writer.write(dir.file("x.safetensors"));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("x.safetensors"), std::string::npos);
  EXPECT_FALSE(file_exists(dir.file("x.safetensors")));
}

TEST(Safetensors, WriteReplacesExistingFileAtomically) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  write_bytes(path, {1, 2, 3});
  SafetensorsWriter writer;
  const uint8_t v = 7;
  ASSERT_TRUE(writer.add("v", DType::kU8, Shape{1}, &v, 1).ok());
  ASSERT_TRUE(writer.write(path).ok());
  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(*(*file)->entries().at("v").data, 7);
  int count = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    (void)entry;
    ++count;
  }
  EXPECT_EQ(count, 1);  // no temporary left behind
}

// ---- corruption ----

TEST(SafetensorsCorrupt, TooShort) {
  const std::vector<uint8_t> bytes = {1, 0, 0};
  auto r = parse_bytes(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("bad.safetensors"), std::string::npos);
  auto empty = SafetensorsFile::parse(nullptr, 0, "bad.safetensors");
  EXPECT_EQ(empty.status().code(), StatusCode::kDataLoss);
}

TEST(SafetensorsCorrupt, HeaderLength) {
  std::vector<uint8_t> bytes = make_file("{}", 0);
  bytes[0] = 200;  // past the end
  auto r = parse_bytes(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("past the end"), std::string::npos);
  bytes.assign(16, 0xff);  // 2^64-1: absurd
  r = parse_bytes(bytes);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("100 MB"), std::string::npos);
  bytes = make_file("", 0);  // empty header
  EXPECT_EQ(parse_bytes(bytes).status().code(), StatusCode::kDataLoss);
}

TEST(SafetensorsCorrupt, HeaderNotJsonObject) {
  expect_error("{\"a\": ", 0, StatusCode::kDataLoss, "not valid JSON");
  expect_error("{} trailing", 0, StatusCode::kDataLoss, "not valid JSON");
  expect_error("[1, 2]", 0, StatusCode::kDataLoss, "must be a JSON object");
  expect_error("\"str\"", 0, StatusCode::kDataLoss, "must be a JSON object");
  expect_error("{\"\xff\": 1}", 0, StatusCode::kDataLoss, "not valid JSON");
}

TEST(SafetensorsCorrupt, EntryFields) {
  expect_error(R"({"t": 5})", 0, StatusCode::kDataLoss, "'t'");
  expect_error(R"({"t": {"shape": [1], "data_offsets": [0, 4]}})", 4, StatusCode::kDataLoss,
               "tensor 't': missing 'dtype'");
  expect_error(R"({"t": {"dtype": "F32", "data_offsets": [0, 4]}})", 4, StatusCode::kDataLoss,
               "tensor 't': missing 'shape'");
  expect_error(R"({"t": {"dtype": "F32", "shape": [1]}})", 4, StatusCode::kDataLoss,
               "tensor 't': missing 'data_offsets'");
  expect_error(R"({"t": {"dtype": 3, "shape": [1], "data_offsets": [0, 4]}})", 4,
               StatusCode::kDataLoss, "'dtype' must be a string");
  expect_error(R"({"t": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}})", 4,
               StatusCode::kDataLoss, "'shape' must be an array");
  expect_error(R"({"t": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}})", 4,
               StatusCode::kDataLoss, "shape[0]");
  expect_error(R"({"t": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}})", 4,
               StatusCode::kDataLoss, "shape[0]");
  expect_error(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", 4,
               StatusCode::kDataLoss, "data_offsets");
  expect_error(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": {"a": 0}}})", 4,
               StatusCode::kDataLoss, "data_offsets");
  expect_error(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4.0]}})", 4,
               StatusCode::kDataLoss, "data_offsets[1]");
  expect_error(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4,
               StatusCode::kDataLoss, "data_offsets[0] is negative");
}

TEST(SafetensorsCorrupt, DTypeAndShape) {
  expect_error(R"({"t": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}})", 4,
               StatusCode::kDataLoss, "tensor 't': unknown dtype 'Q7'");
  expect_error(R"({"t": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})", 8,
               StatusCode::kUnimplemented, "tensor 't': dtype F64");
  expect_error(R"({"t": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 4]}})", 4,
               StatusCode::kDataLoss, "tensor 't': shape[1] is negative");
  expect_error(R"({"t": {"dtype": "U8", "shape": [1, 1, 1, 1, 1], "data_offsets": [0, 1]}})", 1,
               StatusCode::kUnimplemented, "tensor 't': rank 5");
  // numel * bytes overflows 64 bits: must not wrap around to a small size.
  expect_error(
      R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0,
      StatusCode::kDataLoss, "tensor 't': shape");
  expect_error(R"({"t": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})",
               0, StatusCode::kDataLoss, "overflows");
  expect_error(R"({"t": {"dtype": "U8", "shape": [18446744073709551615], "data_offsets": [0,0]}})",
               0, StatusCode::kDataLoss, "too large");
}

TEST(SafetensorsCorrupt, Offsets) {
  expect_error(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 8,
               StatusCode::kDataLoss, "tensor 't': data_offsets [4, 0] are reversed");
  expect_error(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 6,
               StatusCode::kDataLoss, "tensor 't': data_offsets [4, 8] run past the data block");
  expect_error(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 8,
               StatusCode::kDataLoss, "tensor 't': data_offsets [0, 4] hold 4 bytes but");
  expect_error(R"({"t": {"dtype": "U8", "shape": [1], "data_offsets": [18446744073709551615, 0]}})",
               8, StatusCode::kDataLoss, "reversed");
  expect_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
               R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
               8, StatusCode::kDataLoss, "tensor 'b' (bytes [4, 8]) overlaps tensor 'a'");
  expect_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
               R"( "b": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})",
               8, StatusCode::kDataLoss, "overlaps");
  expect_error(R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]},)"
               R"( "b": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},)"
               R"( "c": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}})",
               8, StatusCode::kDataLoss, "overlaps");
}

TEST(SafetensorsCorrupt, ValidLayoutsAccepted) {
  // Empty tensors at boundaries, gaps and trailing bytes are fine.
  const std::vector<uint8_t> bytes =
      make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                R"( "e1": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]},)"
                R"( "e2": {"dtype": "BF16", "shape": [3, 0], "data_offsets": [8, 8]},)"
                R"( "b": {"dtype": "U8", "shape": [2], "data_offsets": [12, 14]}, "x": null,)"
                R"( "__metadata__": {"k": "v"}})",
                20);
  auto r = parse_bytes(bytes);
  EXPECT_FALSE(r.ok());  // "x": null is not an entry
  const std::vector<uint8_t> ok_bytes =
      make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "extra": 1},)"
                R"( "e1": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]},)"
                R"( "e2": {"dtype": "BF16", "shape": [3, 0], "data_offsets": [8, 8]},)"
                R"( "b": {"dtype": "U8", "shape": [2], "data_offsets": [12, 14]},)"
                R"( "__metadata__": {"k": "v"}}   )",
                20);
  r = parse_bytes(ok_bytes);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)->entries().size(), 4u);
  EXPECT_EQ((*r)->entries().at("b").data[0], 12);
  EXPECT_EQ((*r)->metadata().at("k"), "v");
}

TEST(SafetensorsCorrupt, Metadata) {
  expect_error(R"({"__metadata__": ["a"]})", 0, StatusCode::kDataLoss, "'__metadata__'");
  expect_error(R"({"__metadata__": {"k": 1}})", 0, StatusCode::kDataLoss,
               "'__metadata__' value for 'k' must be a string");
}

TEST(SafetensorsCorrupt, TruncatedFileOnDisk) {
  TempDir dir;
  SafetensorsWriter writer;
  const std::vector<uint8_t> data = pattern(64, 5);
  ASSERT_TRUE(writer.add("model.embed", DType::kF32, Shape{4, 4}, data.data(), 64).ok());
  const std::string path = dir.file("model.safetensors");
  ASSERT_TRUE(writer.write(path).ok());
  std::vector<uint8_t> bytes = read_bytes(path);
  bytes.pop_back();
  write_bytes(path, bytes);
  auto r = SafetensorsFile::open(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find(path), std::string::npos);
  EXPECT_NE(r.status().message().find("'model.embed'"), std::string::npos);
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos);

  bytes.resize(20);  // cut inside the header
  write_bytes(path, bytes);
  r = SafetensorsFile::open(path);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find(path), std::string::npos);
}

TEST(SafetensorsCorrupt, MissingFile) {
  TempDir dir;
  auto r = SafetensorsFile::open(dir.file("nope.safetensors"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("nope.safetensors"), std::string::npos);
}

// ---- checkpoints ----

Status write_tensors(const std::string& path, const std::vector<std::string>& names,
                     const Shape& shape) {
  SafetensorsWriter writer;
  const std::vector<uint8_t> data(static_cast<size_t>(shape.numel()) * 4, 1);
  for (const std::string& name : names) {
    VILA_RETURN_IF_ERROR(writer.add(name, DType::kF32, shape, data.data(), data.size()));
  }
  return writer.write(path);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

TEST(Checkpoint, SingleFileFolder) {
  TempDir dir;
  ASSERT_TRUE(write_tensors(dir.file("model.safetensors"), {"b", "a"}, Shape{2, 3}).ok());
  auto ckpt = Checkpoint::open_dir(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  EXPECT_EQ((*ckpt)->names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ((*ckpt)->total_parameters(), 12);
  EXPECT_TRUE((*ckpt)->has("a"));
  EXPECT_FALSE((*ckpt)->has("c"));
  EXPECT_EQ((*ckpt)->dir(), dir.path());

  auto a = (*ckpt)->get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->shape, (Shape{2, 3}));
  EXPECT_TRUE((*ckpt)->get("a", Shape{2, 3}).ok());

  auto wrong = (*ckpt)->get("a", Shape{3, 2});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong.status().message(),
            dir.file("model.safetensors") + ": tensor 'a' has shape [2, 3], expected [3, 2]");

  auto missing = (*ckpt)->get("model.norm.weight");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), dir.path() + ": missing tensor 'model.norm.weight'");
  EXPECT_EQ((*ckpt)->get("nope", Shape{1}).status().code(), StatusCode::kNotFound);

  auto file = Checkpoint::open_file(dir.file("model.safetensors"));
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->names().size(), 2u);
}

constexpr const char* kIndexJson = R"({
  "metadata": {"total_size": 96},
  "weight_map": {
    "layers.0.w": "model-00001-of-00002.safetensors",
    "layers.0.b": "model-00001-of-00002.safetensors",
    "layers.1.w": "model-00002-of-00002.safetensors"
  }
})";

TEST(Checkpoint, ShardedWithIndex) {
  TempDir dir;
  ASSERT_TRUE(write_tensors(dir.file("model-00001-of-00002.safetensors"),
                            {"layers.0.w", "layers.0.b"}, Shape{2, 2})
                  .ok());
  ASSERT_TRUE(
      write_tensors(dir.file("model-00002-of-00002.safetensors"), {"layers.1.w"}, Shape{4}).ok());
  write_text(dir.file("model.safetensors.index.json"), kIndexJson);
  // An index wins over a stray model.safetensors.
  ASSERT_TRUE(write_tensors(dir.file("model.safetensors"), {"stray"}, Shape{1}).ok());

  auto ckpt = Checkpoint::open_dir(dir.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  EXPECT_EQ((*ckpt)->names(), (std::vector<std::string>{"layers.0.b", "layers.0.w", "layers.1.w"}));
  EXPECT_EQ((*ckpt)->total_parameters(), 12);
  auto w1 = (*ckpt)->get("layers.1.w", Shape{4});
  ASSERT_TRUE(w1.ok());
  EXPECT_EQ((*w1)->file, dir.file("model-00002-of-00002.safetensors"));
  EXPECT_FALSE((*ckpt)->has("stray"));
}

TEST(Checkpoint, ShardedErrors) {
  TempDir dir;
  const std::string index = dir.file("model.safetensors.index.json");
  ASSERT_TRUE(
      write_tensors(dir.file("model-00001-of-00002.safetensors"), {"layers.0.w"}, Shape{2, 2})
          .ok());
  write_text(index, kIndexJson);

  // layers.0.b is listed for shard 1, which lacks it.
  auto r = Checkpoint::open_dir(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("'layers.0.b'"), std::string::npos);
  EXPECT_NE(r.status().message().find("model-00001-of-00002.safetensors"), std::string::npos);

  // Shard 2 is missing altogether.
  ASSERT_TRUE(write_tensors(dir.file("model-00001-of-00002.safetensors"),
                            {"layers.0.w", "layers.0.b"}, Shape{2, 2})
                  .ok());
  r = Checkpoint::open_dir(dir.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("model-00002-of-00002.safetensors"), std::string::npos);

  // A corrupt shard reports DataLoss naming the shard.
  write_text(dir.file("model-00002-of-00002.safetensors"), "garbage!garbage!");
  r = Checkpoint::open_dir(dir.path());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("model-00002-of-00002.safetensors"), std::string::npos);

  // The same tensor in two shards.
  ASSERT_TRUE(write_tensors(dir.file("model-00002-of-00002.safetensors"),
                            {"layers.1.w", "layers.0.w"}, Shape{2, 2})
                  .ok());
  r = Checkpoint::open_dir(dir.path());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("'layers.0.w' appears in both"), std::string::npos);

  write_text(index, R"({"weight_map": {"x": "../outside.safetensors"}})");
  EXPECT_EQ(Checkpoint::open_dir(dir.path()).status().code(), StatusCode::kDataLoss);
  write_text(index, R"({"weight_map": {"x": 3}})");
  EXPECT_EQ(Checkpoint::open_dir(dir.path()).status().code(), StatusCode::kDataLoss);
  write_text(index, R"({"metadata": {}})");
  EXPECT_EQ(Checkpoint::open_dir(dir.path()).status().code(), StatusCode::kDataLoss);
  write_text(index, R"({"weight_map": )");
  r = Checkpoint::open_dir(dir.path());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("model.safetensors.index.json"), std::string::npos);
}

TEST(Checkpoint, FolderWithoutIndex) {
  TempDir dir;
  auto r = Checkpoint::open_dir(dir.path());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Checkpoint::open_dir(dir.file("absent")).status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(write_tensors(dir.file("part-b.safetensors"), {"y"}, Shape{3}).ok());
  ASSERT_TRUE(write_tensors(dir.file("part-a.safetensors"), {"x"}, Shape{2}).ok());
  write_text(dir.file("notes.txt"), "hello");
  r = Checkpoint::open_dir(dir.path());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)->names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ((*r)->total_parameters(), 5);
}

}  // namespace
}  // namespace vila
