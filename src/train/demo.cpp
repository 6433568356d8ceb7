#include "train/demo.h"

namespace vila::train {

TrainConfig demo_config(const DemoOptions& options) {
  TrainConfig c;
  c.source = "demo";
  c.model_preset = "fashion";
  c.tokenizer = "train";
  c.tokenizer_vocab = 400;
  // Mostly naming (what the accuracy measures), some yes/no and category questions so that the
  // example answers show more than one skill. More samples than a 5-minute run can visit: the
  // time budget decides how many are seen.
  c.fashion_caption = 48000;
  c.fashion_question = 6000;
  c.data_seed = options.seed;
  c.stage = TrainStage::kSft;
  c.lr = 3e-3;
  c.weight_decay = 0.01;
  c.schedule = "cosine";
  c.warmup_ratio = 0.03;
  c.min_lr_ratio = 0.05;
  c.minutes = options.minutes;
  c.steps = 0;
  c.batch_tokens = 512;
  c.grad_accum = 1;
  c.clip_grad_norm = 1.0;
  c.precision = "fp32";
  c.seed = options.seed;
  c.device = options.device;
  c.checkpoint_every = 0;
  c.checkpoint_keep = 1;
  c.eval_every = 0;
  c.eval_samples = options.eval_samples;
  c.output = options.output;
  return c;
}

}  // namespace vila::train
