"""Reference scores for `do_predict`'s BLEU-4 and ROUGE-1/2/L (fixtures/metrics/similarity.json).

The scores come from LLaMA-Factory 0.9.5's own `ComputeSimilarity` (train/sft/metric.py): jieba
segmentation, `rouge_chinese.Rouge().get_scores` f-scores on the space-joined tokens (0 when
either side has no non-space token), nltk's `sentence_bleu` with `SmoothingFunction().method3`
on character lists, each score x100 and rounded to 4 decimals, averaged with `np.mean`.

`ComputeSimilarity` decodes token ids with a tokenizer; here a stand-in tokenizer maps id k to
the k-th text, so the texts reach the metric exactly as written. Each pair is scored alone
(`pairs[i].scores`) and all pairs together (`average`, the mean over every pair as a prediction
run reports it). The jieba tokens of each text are stored too (`predict_tokens`,
`label_tokens`), so that a segmentation difference shows before a score difference.

The last four pairs read their labels from ../shared/data/llamafactory/alpaca_en_demo.json.

Run from the repository root (deterministic, about 2 s):
  /work/pyref/lf/bin/python tools/make_metric_fixtures.py
Requirements: LLaMA-Factory's environment (tools/requirements-llamafactory.txt) plus
jieba 0.42.1, nltk 3.10.4 and rouge-chinese 1.0.3.
"""
import json
import logging
import os

import jieba
import numpy as np
from llamafactory.train.sft.metric import ComputeSimilarity

jieba.setLogLevel(logging.WARNING)

# (name, prediction, label): English, Chinese, mixed, empty, identical, punctuation, and the
# corner cases of rouge_chinese's sentence cutting and of BLEU's smoothing.
PAIRS = [
    ("english_close", "The cat sat on the mat.", "The cat is sitting on the mat."),
    ("english_identical", "Hello world, this is a test.", "Hello world, this is a test."),
    ("english_unrelated", "Paris is the capital of France.", "Bananas are yellow and sweet."),
    (
        "english_alpaca_like",
        "1. Eat a balanced diet and make sure to include plenty of fruits and vegetables.",
        "1. Eat a balanced and nutritious diet: Make sure your meals are inclusive of a variety "
        "of fruits and vegetables, lean protein, whole grains, and healthy fats.",
    ),
    ("english_repeats", "the the the the the the the", "the cat is on the mat"),
    ("english_short_prediction", "Yes", "Yes, it is correct."),
    ("english_longer_prediction", "The answer is 42, as everyone knows well.", "The answer is 42."),
    ("chinese_close", "我爱北京天安门", "我爱北京的天安门广场"),
    ("chinese_identical", "今天天气很好，我们去公园散步吧。", "今天天气很好，我们去公园散步吧。"),
    (
        "chinese_sentences",
        "小明硕士毕业于中国科学院计算所，后在日本京都大学深造。他喜欢编程！你呢？",
        "小明毕业于中国科学院计算所。后来他去了日本京都大学深造？是的。",
    ),
    ("chinese_unknown_words", "杭研大厦的李小福是创新办主任", "李小福是创新办主任也是云计算方面的专家"),
    ("chinese_unrelated", "苹果很好吃", "火车开得很快"),
    ("mixed_close", "我在用Python 3.11写代码，效率提高了20%。", "我用Python写代码，效率提高了20.5%！"),
    ("mixed_tokens", "GPU显存不够用了，batch size设成8吧", "显存不足，请把batch size设为4"),
    ("empty_prediction", "", "Some reference answer."),
    ("empty_label", "A prediction with no label.", ""),
    ("both_empty", "", ""),
    ("whitespace_prediction", "  \n\t ", "Reference text here."),
    ("punctuation_only", "!!! ??? ...", "!!! ... ???"),
    ("question_marks_run", "真的吗？？是的！！好。", "真的吗？是的！好。"),
    ("six_dots", "等等......然后呢", "等等......后来呢"),
    ("ellipsis_chars", "他说……………我不知道", "他说……我不知道"),
    ("closing_quotes", "他说：“你好？”然后走了。", "他说：“你好！”然后离开了。"),
    ("newlines", "First line.\nSecond line here.\n\nThird.", "First line.\nSecond line.\nThird one."),
    ("multiple_spaces", "a  b   c", "a b c"),
    ("single_char", "a", "a"),
    ("single_char_mismatch", "a", "b"),
    ("emoji", "I love it 😀👍 so much", "I love it 😀 very much"),
    ("numbers_and_percent", "Growth was 3.5% in 2023 and 4.25% in 2024.", "Growth was 3.5% in 2023."),
    ("code_like", "def f(x): return x + 1", "def f(x):\n    return x+1"),
    ("repeated_chinese_words", "好的好的好的好的", "好的"),
    (
        "ascii_connectors",
        "Upgrade to v1.2.3 of my_lib: see release-notes.md (50.5%-off)",
        "Upgrade my_lib to v1.2.4, see the release notes",
    ),
    ("chinese_with_model_names", "我们用GPT-4o-mini模型和Llama-3.1-8B做实验", "实验使用了GPT-4模型"),
]

# Real prediction-run pairs: SmolLM2-135M-Instruct's greedy 8-token answers to the first four
# alpaca_en_demo prompts (template smollm2), against the dataset's answers as decoded labels
# (the answer plus the template's "\n" after <|im_end|>). Long multi-paragraph references.
ALPACA_DEMO = os.path.join(os.path.dirname(__file__), "../../shared/data/llamafactory/alpaca_en_demo.json")
ALPACA_PREDICTIONS = [
    "The process of making crepes is a",
    "The car sped quickly.",
    "The world is facing a pressing issue that",
    "Combining two words is a classic problem",
]
with open(ALPACA_DEMO, encoding="utf-8") as f:
    _records = json.load(f)
PAIRS += [
    (f"alpaca_demo_{i}", pred, _records[i]["output"] + "\n")
    for i, pred in enumerate(ALPACA_PREDICTIONS)
]


class TextsAsIds:
    """A tokenizer stand-in: id k decodes to `texts[k]` (pad id 0 decodes to nothing)."""

    pad_token_id = 0

    def __init__(self, texts):
        self.texts = [""] + list(texts)

    def batch_decode(self, rows, skip_special_tokens=True):
        return ["".join(self.texts[int(i)] for i in row if int(i) != 0) for row in rows]


def scores(predictions, labels):
    """LLaMA-Factory's ComputeSimilarity over the pairs (predictions[i], labels[i])."""
    tok = TextsAsIds(list(predictions) + list(labels))
    n = len(predictions)
    preds = np.array([[i + 1] for i in range(n)], dtype=np.int64)
    refs = np.array([[n + i + 1] for i in range(n)], dtype=np.int64)

    class Pred:
        predictions = preds
        label_ids = refs

    metric = ComputeSimilarity(tokenizer=tok)
    return metric(Pred())


def main():
    cases = []
    for name, pred, label in PAIRS:
        cases.append(
            {
                "name": name,
                "predict": pred,
                "label": label,
                "predict_tokens": list(jieba.cut(pred)),
                "label_tokens": list(jieba.cut(label)),
                "scores": scores([pred], [label]),
            }
        )
    average = scores([p for _, p, _ in PAIRS], [l for _, _, l in PAIRS])
    out = {
        "source": "LLaMA-Factory 0.9.5 ComputeSimilarity (train/sft/metric.py); jieba "
        + jieba.__version__,
        "pairs": cases,
        "average": average,
    }
    os.makedirs("fixtures/metrics", exist_ok=True)
    with open("fixtures/metrics/similarity.json", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} pairs; average {average}")


if __name__ == "__main__":
    main()
