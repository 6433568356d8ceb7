// encode_sample and the image sources against the inference path: the ids of a conversation up
// to the assistant's answer (with each image expanded to its rows + "\n") equal
// VilaModel::build_prompt's on the fixture checkpoints, and a Fashion-MNIST image saved as PNG and
// preprocessed by inference gives the tile FashionImageSource gives. Then targets (shifted,
// answer + end-of-turn only, multi-turn, documents), and the errors.
#include "train/encode.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "../common/temp_dir.h"
#include "data/fashion_samples.h"
#include "fashion_test_util.h"
#include "model/vila_model.h"
#include "train/image_source.h"

namespace vila::train {
namespace {

namespace fs = std::filesystem;
using data::ImageRef;
using data::Role;
using data::Sample;
using data::Segment;

const fs::path kVision = fs::path(VILA_FIXTURES_DIR) / "vision";

// ---- a grey 8-bit PNG writer (stored deflate blocks), enough for the parity tests ----
void put_be32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 255));
}
void put_chunk(std::string* out, const char* type, const std::string& data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out->append(body);
  put_be32(out, static_cast<uint32_t>(
                    crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())));
}
void write_grey_png(const std::string& path, const uint8_t* grey, int w, int h) {
  std::string raw;  // filter byte 0 + row
  for (int y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.append(reinterpret_cast<const char*>(grey + static_cast<size_t>(y) * w), w);
  }
  std::string z = "\x78\x01";
  constexpr size_t kStoredMax = 65535;
  for (size_t pos = 0; pos < raw.size(); pos += kStoredMax) {
    const size_t n = std::min(kStoredMax, raw.size() - pos);
    z.push_back(pos + n == raw.size() ? 1 : 0);
    z.push_back(static_cast<char>(n & 255));
    z.push_back(static_cast<char>(n >> 8));
    z.push_back(static_cast<char>(~n & 255));
    z.push_back(static_cast<char>((~n >> 8) & 255));
    z.append(raw, pos, n);
  }
  put_be32(&z, static_cast<uint32_t>(
                   adler32(1, reinterpret_cast<const Bytef*>(raw.data()), raw.size())));
  std::string ihdr;
  put_be32(&ihdr, static_cast<uint32_t>(w));
  put_be32(&ihdr, static_cast<uint32_t>(h));
  ihdr += std::string("\x08\x00\x00\x00\x00", 5);  // 8 bit, grey, deflate, no filter, no interlace
  std::string png = "\x89PNG\r\n\x1a\n";
  put_chunk(&png, "IHDR", ihdr);
  put_chunk(&png, "IDAT", z);
  put_chunk(&png, "IEND", "");
  std::ofstream(path, std::ios::binary) << png;
}

using testing::synthetic_split;

Sample caption_sample(std::vector<ImageRef> images, const std::string& question,
                      const std::string& answer) {
  Sample s;
  s.origin = "test:caption";
  for (const ImageRef& ref : images) s.segments.push_back(Segment::image_of(Role::kUser, ref));
  s.segments.push_back(Segment::text_of(Role::kUser, question));
  s.segments.push_back(Segment::text_of(Role::kAssistant, answer));
  return s;
}

struct Fixture {
  std::unique_ptr<VilaModel> model;
  PreprocessConfig preprocess;
  EncodeContext ctx;
};

Fixture load_fixture(const std::string& name) {
  Fixture f;
  const std::string dir = (kVision / name).string();
  auto model = VilaModel::load(dir);
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  if (!model.ok()) return f;
  f.model = std::move(*model);
  auto pre = load_preprocess_config(dir);
  EXPECT_TRUE(pre.ok()) << pre.status().to_string();
  f.preprocess = *pre;
  auto ctx = make_encode_context(f.model->tokenizer(), f.model->chat_template(), f.preprocess,
                                 /*max_tokens=*/8192);
  EXPECT_TRUE(ctx.ok()) << ctx.status().to_string();
  f.ctx = *ctx;
  return f;
}

// Inference's row sequence: each image token's media rows (as image ids) + the "\n" ids.
std::vector<int32_t> inference_rows(const Fixture& f, const MediaPrompt& prompt,
                                    std::vector<int64_t>* first_rows) {
  const Tokenizer& tok = f.model->tokenizer();
  std::vector<int32_t> newline;
  if (tok.add_bos_token && tok.bos_id) newline.push_back(*tok.bos_id);
  for (int32_t id : tok.encode("\n")) newline.push_back(id);
  std::vector<int32_t> rows;
  size_t media = 0;
  const int32_t image_id = *f.model->image_token_id();
  for (int32_t id : prompt.input.ids) {
    if (id != image_id) {
      rows.push_back(id);
      continue;
    }
    EXPECT_LT(media, prompt.media_rows.size());
    const auto [first, count] = prompt.media_rows[media++];
    EXPECT_EQ(first, static_cast<int64_t>(rows.size()));
    EXPECT_EQ(count, f.ctx.tokens_per_image) << "rows of media item " << media - 1;
    first_rows->push_back(first);
    rows.insert(rows.end(), static_cast<size_t>(count), image_id);
    rows.insert(rows.end(), newline.begin(), newline.end());
  }
  EXPECT_EQ(prompt.input.embeds.size() / static_cast<size_t>(f.model->llm().config().hidden),
            rows.size());
  return rows;
}

// The parity check: prompt rows of the encoded sample == inference's, then answer + eot trained.
void expect_inference_parity(const std::string& fixture, int n_images) {
  Fixture f = load_fixture(fixture);
  ASSERT_NE(f.model, nullptr);
  testing::TempDir tmp;
  data::FashionSplit split = synthetic_split(4, 7);
  std::vector<std::string> paths;
  std::vector<ImageRef> refs;
  for (int i = 0; i < n_images; ++i) {
    paths.push_back(tmp.path() + "/fashion" + std::to_string(i) + ".png");
    write_grey_png(paths.back(), split.image(i), data::kFashionSide, data::kFashionSide);
    refs.push_back(ImageRef{"", i});
  }
  const std::string question =
      n_images == 1 ? data::fashion_eval_prompt() : "Are these the same kind of item?";
  const std::string answer = data::fashion_eval_answer(1);  // "A trouser."
  auto prompt = f.model->build_prompt(question, paths, /*raw=*/false);
  ASSERT_TRUE(prompt.ok()) << prompt.status().to_string();
  std::vector<int64_t> first_rows;
  const std::vector<int32_t> want = inference_rows(f, *prompt, &first_rows);

  auto enc = encode_sample(caption_sample(refs, question, answer), f.ctx);
  ASSERT_TRUE(enc.ok()) << enc.status().to_string();
  const size_t p = want.size();
  ASSERT_GT(enc->ids.size(), p);
  EXPECT_EQ(std::vector<int32_t>(enc->ids.begin(), enc->ids.begin() + p), want) << fixture;
  EXPECT_EQ(enc->image_rows, first_rows);
  ASSERT_EQ(enc->images.size(), static_cast<size_t>(n_images));
  for (int i = 0; i < n_images; ++i) EXPECT_EQ(enc->images[i].index, i);
  // After the prompt: the answer's tokens and the end-of-turn marker, all trained.
  std::vector<int32_t> tail = f.model->tokenizer().encode(answer);
  tail.push_back(f.model->tokenizer().encode(f.model->chat_template().end_of_turn())[0]);
  EXPECT_EQ(std::vector<int32_t>(enc->ids.begin() + p, enc->ids.end()), tail);
  for (size_t t = 0; t < enc->ids.size(); ++t) {
    const int32_t want_target = t + 1 >= p && t + 1 < enc->ids.size() ? enc->ids[t + 1] : -100;
    EXPECT_EQ(enc->targets[t], want_target) << "position " << t;
  }
  // Greedy generation at inference starts from exactly this prompt: the first answer token is
  // the target of the last prompt position.
  EXPECT_EQ(enc->targets[p - 1], tail[0]);
}

TEST(TrainEncode, CaptionMatchesInferenceNvilaLiteDynamic) {
  expect_inference_parity("nvila-lite", 1);
}
TEST(TrainEncode, CompareMatchesInferenceNvilaLiteTwoImages) {
  expect_inference_parity("nvila-lite", 2);
}
TEST(TrainEncode, CaptionMatchesInferenceVila15VicunaLlama) {
  expect_inference_parity("vila15", 1);
}

TEST(TrainImageSource, FashionTileEqualsInferenceOfSavedPng) {
  testing::TempDir tmp;
  std::vector<data::FashionSplit> splits;
  splits.push_back(synthetic_split(3, 11));
  const std::string real = std::string(data::kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz";
  if (fs::exists(real)) {
    auto t10k = data::load_fashion_split(data::kFashionMnistDir, "t10k");
    ASSERT_TRUE(t10k.ok()) << t10k.status().to_string();
    splits.push_back(std::move(*t10k));
  }
  for (const std::string fixture : {"nvila-lite", "vila15"}) {
    auto pre = load_preprocess_config((kVision / fixture).string());
    ASSERT_TRUE(pre.ok()) << pre.status().to_string();
    for (const data::FashionSplit& split : splits) {
      FashionImageSource source(split, *pre);
      EXPECT_EQ(source.image_size(), pre->image_size);
      for (int64_t index : {int64_t{0}, int64_t{2}}) {
        const std::string png = tmp.path() + "/img.png";
        write_grey_png(png, split.image(index), data::kFashionSide, data::kFashionSide);
        auto image = load_image(png);
        ASSERT_TRUE(image.ok()) << image.status().to_string();
        // Inference: a prompt's only image (dynamic: one 28 x 28 tile, no thumbnail).
        auto inference = preprocess_image(*image, *pre, /*single_image=*/true);
        ASSERT_TRUE(inference.ok()) << inference.status().to_string();
        ASSERT_EQ(inference->num_tiles, 1);
        auto tile = source.tile(ImageRef{"", index}, "test");
        ASSERT_TRUE(tile.ok()) << tile.status().to_string();
        ASSERT_EQ(tile->size(), inference->data.size());
        double max_diff = 0;
        for (size_t i = 0; i < tile->size(); ++i) {
          max_diff = std::max(max_diff, std::fabs(double{(*tile)[i]} - inference->data[i]));
        }
        EXPECT_LE(max_diff, 1e-6) << fixture << " " << split.name << " #" << index;
        // The file source reads the same tile back.
        FileImageSource files(tmp.path(), *pre);
        auto from_file = files.tile(ImageRef{"img.png", -1}, "test");
        ASSERT_TRUE(from_file.ok()) << from_file.status().to_string();
        EXPECT_EQ(*from_file, *tile);
      }
    }
  }
}

TEST(TrainImageSource, ErrorsNameThePathAndTheSample) {
  testing::TempDir tmp;
  PreprocessConfig pre;
  FileImageSource files(tmp.path(), pre);
  auto missing = files.tile(ImageRef{"nope.png", -1}, "data.jsonl:12");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.png"), std::string::npos);
  EXPECT_NE(missing.status().message().find("data.jsonl:12"), std::string::npos);
  std::ofstream(tmp.path() + "/bad.png", std::ios::binary) << "\x89PNG\r\n\x1a\ngarbage";
  auto corrupt = files.tile(ImageRef{"bad.png", -1}, "data.jsonl:13");
  ASSERT_FALSE(corrupt.ok());
  EXPECT_EQ(corrupt.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(corrupt.status().message().find("bad.png"), std::string::npos);
  EXPECT_NE(corrupt.status().message().find("data.jsonl:13"), std::string::npos);
  data::FashionSplit split = synthetic_split(2, 3);
  FashionImageSource fashion(split, pre);
  auto past = fashion.tile(ImageRef{"", 2}, "fashion:caption:0");
  ASSERT_FALSE(past.ok());
  EXPECT_EQ(past.status().code(), StatusCode::kOutOfRange);
  EXPECT_FALSE(fashion.tile(ImageRef{"a.png", -1}, "x").ok());
}

TEST(TrainEncode, MultiTurnEqualsJointTemplateAndTrainsOnlyAnswers) {
  Fixture f = load_fixture("nvila-lite");
  ASSERT_NE(f.model, nullptr);
  const Tokenizer& tok = f.model->tokenizer();
  Sample s;
  s.origin = "test:multi";
  s.segments = {Segment::text_of(Role::kSystem, "Be brief."),
                Segment::image_of(Role::kUser, ImageRef{"", 0}),
                Segment::text_of(Role::kUser, "What is this? \n"),
                Segment::text_of(Role::kAssistant, "A bag."),
                Segment::text_of(Role::kUser, "And its category?"),
                Segment::text_of(Role::kAssistant, "Bag.")};
  auto enc = encode_sample(s, f.ctx);
  ASSERT_TRUE(enc.ok()) << enc.status().to_string();
  // The whole conversation rendered once (qwen2.jinja) and tokenized jointly, "<image>\n" since
  // the sample has one image on a dynamic checkpoint.
  const std::string joint =
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<image>\nWhat is "
      "this?<|im_end|>\n<|im_start|>assistant\nA bag.<|im_end|>\n<|im_start|>user\nAnd its "
      "category?<|im_end|>\n<|im_start|>assistant\nBag.<|im_end|>";
  const std::vector<int32_t> joint_ids = tok.encode(joint);
  const int32_t image_id = *f.ctx.image_token_id;
  std::vector<int32_t> expanded;
  for (int32_t id : joint_ids) {
    if (id != image_id) {
      expanded.push_back(id);
      continue;
    }
    ASSERT_EQ(enc->image_rows, std::vector<int64_t>{static_cast<int64_t>(expanded.size())});
    expanded.insert(expanded.end(), static_cast<size_t>(f.ctx.tokens_per_image), image_id);
    for (int32_t nl : tok.encode("\n")) expanded.push_back(nl);
  }
  EXPECT_EQ(enc->ids, expanded);
  // Trained: exactly "A bag." <|im_end|> and "Bag." <|im_end|>.
  std::vector<int32_t> trained, want;
  for (size_t t = 0; t < enc->targets.size(); ++t) {
    if (enc->targets[t] >= 0) {
      EXPECT_EQ(enc->targets[t], enc->ids[t + 1]);
      trained.push_back(enc->targets[t]);
    }
  }
  const int32_t im_end = *tok.piece_to_id("<|im_end|>");
  for (const char* answer : {"A bag.", "Bag."}) {
    for (int32_t id : tok.encode(answer)) want.push_back(id);
    want.push_back(im_end);
  }
  EXPECT_EQ(trained, want);
  EXPECT_EQ(enc->targets.back(), kIgnoreTarget);
}

// Text-only two-turn conversations on the other templates equal the whole conversation
// tokenized at once (conversation.py: vicuna_v1 "... ASSISTANT: a</s>USER: ...", llama_3
// "...a<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n...").
TEST(TrainEncode, MultiTurnVicunaAndLlama3EqualJointTokenization) {
  struct Case {
    std::string dir;
    std::string second_turn;    // between the first answer's end-of-turn and the second answer
    std::string before_answer;  // vicuna_v1: "ASSISTANT: " + answer
  };
  const std::vector<Case> cases = {
      {"vision/vila15", "USER: And now? ASSISTANT:", " "},
      {"models/llama3-plain",
       "<|start_header_id|>user<|end_header_id|>\n\nAnd now?<|eot_id|><|start_header_id|>"
       "assistant<|end_header_id|>\n\n",
       ""}};
  for (const Case& c : cases) {
    auto model = VilaModel::load((fs::path(VILA_FIXTURES_DIR) / c.dir).string());
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    const Tokenizer& tok = (*model)->tokenizer();
    EncodeContext ctx;
    ctx.tokenizer = &tok;
    ctx.chat_template = (*model)->chat_template();
    ASSERT_NE(ctx.chat_template.kind, ChatTemplateKind::kNone) << c.dir;
    Sample s;
    s.origin = "test:" + c.dir;
    s.segments = {Segment::text_of(Role::kUser, "Hi there"),
                  Segment::text_of(Role::kAssistant, "Hello, I am fine."),
                  Segment::text_of(Role::kUser, "And now?"),
                  Segment::text_of(Role::kAssistant, "Bye.")};
    auto enc = encode_sample(s, ctx);
    ASSERT_TRUE(enc.ok()) << enc.status().to_string();
    const std::string eot = ctx.chat_template.end_of_turn();
    std::vector<int32_t> want;
    if (ctx.chat_template.prepend_bos()) want.push_back(*tok.bos_id);
    for (int32_t id :
         tok.encode(ctx.chat_template.render_user_turn("Hi there") + c.before_answer +
                    "Hello, I am fine." + eot + c.second_turn + c.before_answer + "Bye." + eot)) {
      want.push_back(id);
    }
    EXPECT_EQ(enc->ids, want) << c.dir;
    std::string trained;
    for (size_t t = 0; t + 1 < enc->ids.size(); ++t) {
      if (enc->targets[t] >= 0) trained += tok.token_bytes(enc->targets[t]) + "|";
    }
    EXPECT_NE(trained.find(eot + "|"), std::string::npos) << c.dir << ": " << trained;
    EXPECT_EQ(trained.find("And"), std::string::npos) << c.dir << ": " << trained;
  }
}

TEST(TrainEncode, FewShotDocumentTrainsEveryTextTokenAndEos) {
  Fixture f = load_fixture("vila15");  // Llama-2 tokenizer: BOS in front, "\n" = <s> ▁ \n
  ASSERT_NE(f.model, nullptr);
  const Tokenizer& tok = f.model->tokenizer();
  data::FashionSplit split = synthetic_split(30, 5);
  data::FashionSampleOptions options;
  options.few_shot_k = 2;
  auto samples = data::build_fashion_samples(split, data::FashionTask::kFewShot, 2, options);
  ASSERT_TRUE(samples.ok()) << samples.status().to_string();
  for (const Sample& s : *samples) {
    auto enc = encode_sample(s, f.ctx);
    ASSERT_TRUE(enc.ok()) << enc.status().to_string();
    ASSERT_EQ(enc->images.size(), 3u);  // 2 examples + the query
    std::vector<int32_t> want = {*tok.bos_id};
    std::vector<uint8_t> trained = {0};
    size_t image = 0;
    for (const Segment& seg : s.segments) {
      if (seg.is_image()) {
        EXPECT_EQ(enc->image_rows[image], static_cast<int64_t>(want.size()));
        EXPECT_EQ(enc->images[image++].index, seg.image.index);
        want.insert(want.end(), static_cast<size_t>(f.ctx.tokens_per_image), *f.ctx.image_token_id);
        want.insert(want.end(), {*tok.bos_id});
        for (int32_t id : tok.encode("\n")) want.push_back(id);
        trained.resize(want.size(), 0);
      } else {
        for (int32_t id : tok.encode(seg.text)) want.push_back(id);
        trained.resize(want.size(), 1);
      }
    }
    want.push_back(*tok.eos_id);
    trained.push_back(1);
    EXPECT_EQ(enc->ids, want);
    for (size_t t = 0; t < want.size(); ++t) {
      EXPECT_EQ(enc->targets[t], t + 1 < want.size() && trained[t + 1] ? want[t + 1] : -100);
    }
  }
}

TEST(TrainEncode, TooLongIsOutOfRangeNamingTheOrigin) {
  Fixture f = load_fixture("nvila-lite");
  ASSERT_NE(f.model, nullptr);
  EncodeContext ctx = f.ctx;
  Sample s = caption_sample({ImageRef{"", 0}}, "What is this?", "A trouser.");
  s.origin = "fashion-mnist/train:caption:3";
  auto full = encode_sample(s, ctx);
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  ctx.max_tokens = full->tokens();
  EXPECT_TRUE(encode_sample(s, ctx).ok());
  ctx.max_tokens = full->tokens() - 1;
  auto too_long = encode_sample(s, ctx);
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), StatusCode::kOutOfRange);
  EXPECT_NE(too_long.status().message().find("fashion-mnist/train:caption:3"), std::string::npos);
}

TEST(TrainEncode, ErrorsForMissingImageTokenAndMalformedConversations) {
  Fixture f = load_fixture("nvila-lite");
  ASSERT_NE(f.model, nullptr);
  auto plain = Tokenizer::load_dir((fs::path(VILA_FIXTURES_DIR) / "models/qwen2-plain").string());
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  ASSERT_FALSE((*plain)->piece_to_id("<image>"));
  auto ctx = make_encode_context(**plain, f.model->chat_template(), f.preprocess, 0);
  ASSERT_FALSE(ctx.ok());
  EXPECT_EQ(ctx.status().code(), StatusCode::kInvalidArgument);
  EncodeContext no_image = f.ctx;
  no_image.image_token_id.reset();
  auto enc = encode_sample(caption_sample({ImageRef{"", 0}}, "Q?", "A."), no_image);
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), StatusCode::kInvalidArgument);
  // Text-only samples need no image token.
  EXPECT_TRUE(encode_sample(caption_sample({}, "Q?", "A."), no_image).ok());

  Sample no_answer;
  no_answer.origin = "x.jsonl:4";
  no_answer.segments = {Segment::text_of(Role::kUser, "hello")};
  auto bad = encode_sample(no_answer, f.ctx);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("x.jsonl:4"), std::string::npos);
  // An <image> typed in the text beside the listed images: the counts disagree.
  Sample extra = caption_sample({ImageRef{"", 0}}, "<image> What?", "A.");
  EXPECT_EQ(encode_sample(extra, f.ctx).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vila::train
