"""Map: scores the text in `column` (utf8) with the word lexicon shipped
beside this file (lexicon.txt, AFINN-style scores) and adds a float64
`sentiment` column: the sum of the scores of the words found in the lexicon
divided by the number of words (0 for text without words; null text gives
null). Words are the maximal runs of ASCII letters and apostrophes of the
lower-cased text.

The lexicon is read when the module is imported, which componentize-py does
while building (pre-initialisation): the table is part of the component's
memory image and nothing touches a file system at run time.

Config (optional): {"column": "text"}
Build: scripts/build-polyglot-guests (-> target/guests/polyglot/python-sentiment.wasm)
"""

import os
import re
from array import array

import weir_sdk as weir


def _load_lexicon():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lexicon.txt")
    table = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                word, score = line.split("\t")
                table[word] = float(score)
    return table


LEXICON = _load_lexicon()  # runs at build time
_WORDS = re.compile(r"[a-z']+")


def score(text: str) -> float:
    words = _WORDS.findall(text.lower())
    if not words:
        return 0.0
    get = LEXICON.get
    return sum(get(w, 0.0) for w in words) / len(words)


@weir.export
class Sentiment(weir.MapOperator):
    CONFIG = {"column": "text"}

    def reads(self):
        return [self.config["column"]]

    def process(self, batch):
        col = batch.column(self.config["column"])
        if col.type != weir.UTF8:
            raise weir.InvalidInput("column `%s` is %s, expected utf8" % (self.config["column"], col.type))
        scores = array("d", [score(t) for t in col.values()])
        return weir.Batch([
            (weir.Field("sentiment", weir.FLOAT64, True), weir.Column.float64(scores, validity=col.validity)),
        ])
