// The measurements of train/eval_text.h: the held-out text loss of a tiny saved model (through
// the inference LanguageModel) equals the cross-entropy computed directly from the training
// model's forward_logits; few-shot documents render as raw interleaved prompts with their images
// and texts in order and the answer withheld.
#include "train/eval_text.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "data/fashion_samples.h"
#include "model/vila_model.h"
#include "model_test_util.h"
#include "train/model/released_io.h"
#include "train/model/vlm.h"

namespace vila::train {
namespace {

namespace fs = std::filesystem;

const std::string kTokenizerDir = std::string(VILA_FIXTURES_DIR) + "/vision/nvila-lite/llm";

// tiny, with a vocabulary that covers the fixture tokenizer (ids up to 775).
VlmConfig tiny_config() {
  VlmConfig c = vlm_preset("tiny").value();
  c.llm.vocab = 776;
  c.llm.eos_token_id = 765;
  c.llm.bos_token_id = 766;
  return c;
}

// -log softmax(logits)[target] in double; logits (V).
double nll(const float* logits, int64_t V, int32_t target) {
  double max = logits[0];
  for (int64_t v = 1; v < V; ++v) max = std::max<double>(max, logits[v]);
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(logits[v]) - max);
  return -(static_cast<double>(logits[target]) - max - std::log(sum));
}

TEST(EvalText, TextLossEqualsForwardLogitsCrossEntropy) {
  const VlmConfig c = tiny_config();
  ParamStore store;
  auto m = VlmModel::create(c, store).value();
  m->init(11, 0.2f);
  const std::string dir = ::testing::TempDir() + "vila_eval_text_model";
  fs::remove_all(dir);
  SaveReleasedOptions opt;
  opt.tokenizer_files = tokenizer_files_in(kTokenizerDir);
  ASSERT_FALSE(opt.tokenizer_files.empty());
  Status st = save_released(dir, c, store, opt);
  ASSERT_TRUE(st.ok()) << st.message();
  auto vm = VilaModel::load(dir);
  ASSERT_TRUE(vm.ok()) << vm.status().message();

  const std::vector<std::string> docs = {
      "Abacus, a frame with beads for counting.", "The cat sat on the mat, quietly.",
      "Zebra (n.): an African wild animal of the horse family, striped black and white. It is "
      "swift and wary."};
  constexpr int64_t kMaxTokens = 24;  // the third document is cut
  auto got = eval_text_loss((*vm)->llm(), (*vm)->tokenizer(), docs, kMaxTokens);
  ASSERT_TRUE(got.ok()) << got.status().message();

  // Direct: every document through forward_logits, cross-entropy of each next id.
  const Tokenizer& tok = (*vm)->tokenizer();
  double nats = 0;
  int64_t tokens = 0;
  const int64_t V = c.llm.vocab;
  for (const std::string& d : docs) {
    testing::TestSample s;
    if (tok.add_bos_token && tok.bos_id) s.ids.push_back(*tok.bos_id);
    for (int32_t id : tok.encode(d)) s.ids.push_back(id);
    ASSERT_TRUE(tok.eos_id.has_value());
    s.ids.push_back(*tok.eos_id);
    if (static_cast<int64_t>(s.ids.size()) > kMaxTokens) s.ids.resize(kMaxTokens);
    const auto T = static_cast<int64_t>(s.ids.size());
    const std::vector<float> logits =
        m->forward_logits(testing::pack(c, {s}, /*placeholder=*/-1)).value();  // (T, V)
    ASSERT_EQ(static_cast<int64_t>(logits.size()), T * V);
    for (int64_t t = 0; t + 1 < T; ++t) {
      nats += nll(logits.data() + t * V, V, s.ids[static_cast<size_t>(t + 1)]);
      tokens++;
    }
  }
  EXPECT_EQ(got->documents, 3);
  EXPECT_EQ(got->tokens, tokens);
  const double want = nats / static_cast<double>(tokens);
  EXPECT_GT(want, 1.0);  // a random model: far from 0
  EXPECT_NEAR(got->mean(), want, 1e-4 * want);
  fs::remove_all(dir);
}

TEST(EvalText, TextLossRejectsBadArguments) {
  const VlmConfig c = tiny_config();
  ParamStore store;
  auto m = VlmModel::create(c, store).value();
  m->init(12);
  const std::string dir = ::testing::TempDir() + "vila_eval_text_bad";
  fs::remove_all(dir);
  SaveReleasedOptions opt;
  opt.tokenizer_files = tokenizer_files_in(kTokenizerDir);
  ASSERT_TRUE(save_released(dir, c, store, opt).ok());
  auto vm = VilaModel::load(dir);
  ASSERT_TRUE(vm.ok()) << vm.status().message();
  EXPECT_FALSE(eval_text_loss((*vm)->llm(), (*vm)->tokenizer(), {"text"}, 1).ok());
  EXPECT_FALSE(eval_text_loss((*vm)->llm(), (*vm)->tokenizer(), {}, 16).ok());
  EXPECT_FALSE(held_out_text("wikipedia", 4).ok());
  fs::remove_all(dir);
}

data::Sample document(const std::vector<std::pair<int64_t, std::string>>& shots) {
  data::Sample s;
  s.kind = data::SampleKind::kDocument;
  s.origin = "test";
  for (const auto& [index, text] : shots) {
    s.segments.push_back(data::Segment::image_of(data::Role::kDocument, {"", index}));
    s.segments.push_back(data::Segment::text_of(data::Role::kDocument, text));
  }
  return s;
}

const ImagePathFn kPathOf = [](const data::ImageRef& r) -> StatusOr<std::string> {
  return "img" + std::to_string(r.index) + ".png";
};

TEST(EvalText, FewShotPromptHasImagesAndTextsInOrder) {
  data::Sample s =
      document({{5, "This is a bag."}, {7, "This is an ankle boot."}, {9, "This is a trouser."}});
  s.label = 1;
  auto fs = render_few_shot(s, kPathOf);
  ASSERT_TRUE(fs.ok()) << fs.status().message();
  EXPECT_EQ(fs->prompt, "<image>This is a bag.<image>This is an ankle boot.<image>This is");
  EXPECT_EQ(fs->images, (std::vector<std::string>{"img5.png", "img7.png", "img9.png"}));
  EXPECT_EQ(fs->expected, " a trouser.");
  EXPECT_EQ(fs->label, 1);

  // k = 0: the query alone.
  auto query = render_few_shot(document({{3, "This is a coat."}}), kPathOf);
  ASSERT_TRUE(query.ok());
  EXPECT_EQ(query->prompt, "<image>This is");
  EXPECT_EQ(query->images, std::vector<std::string>{"img3.png"});

  // Not a few-shot document: no image before the last text, or a different text.
  data::Sample bad = document({{1, "A bag."}});
  EXPECT_FALSE(render_few_shot(bad, kPathOf).ok());
  bad.segments.pop_back();
  EXPECT_FALSE(render_few_shot(bad, kPathOf).ok());
}

TEST(EvalText, BuiltFewShotDocumentsRenderWithTheHint) {
  // A fake split: 3 images per class.
  data::FashionSplit split;
  split.name = "t10k";
  constexpr int kPerClass = 3;
  split.count = kPerClass * data::kFashionClasses;
  split.pixels.assign(static_cast<size_t>(split.count) * data::kFashionSide * data::kFashionSide,
                      0);
  for (int64_t i = 0; i < split.count; ++i) {
    split.labels.push_back(static_cast<uint8_t>(i % data::kFashionClasses));
  }
  data::FashionSampleOptions o;
  o.few_shot_k = 4;
  o.few_shot_include_query_class = true;
  auto docs = data::build_fashion_samples(split, data::FashionTask::kFewShot, 20, o);
  ASSERT_TRUE(docs.ok()) << docs.status().message();
  for (const data::Sample& s : *docs) {
    auto fs = render_few_shot(s, kPathOf);
    ASSERT_TRUE(fs.ok()) << fs.status().message();
    ASSERT_EQ(fs->images.size(), 5u);
    // Images in segment order, each before its text.
    size_t seg = 0;
    for (const std::string& path : fs->images) {
      while (!s.segments[seg].is_image()) ++seg;
      EXPECT_EQ(path, "img" + std::to_string(s.segments[seg].image.index) + ".png");
      ++seg;
    }
    size_t markers = 0;
    for (size_t p = fs->prompt.find("<image>"); p != std::string::npos;
         p = fs->prompt.find("<image>", p + 1)) {
      ++markers;
    }
    EXPECT_EQ(markers, 5u);
    EXPECT_EQ(fs->prompt.substr(fs->prompt.size() - 14), "<image>This is");
    // The hint: one example names the query's class.
    EXPECT_EQ(class_in_answer(fs->expected), s.label);
    bool hinted = false;
    for (size_t i = 1; i + 2 < s.segments.size(); i += 2) {
      hinted = hinted || class_in_answer(s.segments[i].text) == s.label;
    }
    EXPECT_TRUE(hinted) << fs->prompt;
  }
}

}  // namespace
}  // namespace vila::train
