"""Prompt tools: the action phrase of a prompt (MotionCharacter's motion-control input, seed 002 §3.3).

MotionCharacter captions every clip with an overall description and a short *action phrase* ("smiles and
turns to his left") that the Motion Control Module reads. At generation time users write one prompt; the
action phrase is the clause that carries its main verb, cut before the scene that follows it:

    "a woman with red hair, wearing a blue hoodie, laughs and turns to her left in front of a white wall"
        -> "laughs and turns to her left"
    "she laughs and turns to the window, wearing a red scarf"  -> "laughs and turns to the window"

A rule backend: clauses are split at commas, the first clause holding a known action verb (third person,
"-s"/"-ing" forms) wins, and the phrase runs from that verb to the first scene marker ("in front of",
"outdoors", "under", ...). A prompt without a known verb is its own action phrase.
"""

from __future__ import annotations

import re

# verb stems the synthetic world and common portrait-video prompts use
ACTION_VERBS = (
    "talk", "speak", "say", "sing", "smile", "laugh", "grin", "blink", "wink", "nod", "shake", "turn", "look",
    "glance", "tilt", "raise", "frown", "cry", "yawn", "sneeze", "gasp", "open", "close", "move", "lean",
    "wave", "rotate", "stare", "gaze", "watch", "chew", "eat", "drink", "whisper", "shout", "breathe", "sigh",
    "bow", "dance", "walk", "run", "jump", "sit", "stand", "react", "pout", "squint", "wipe", "touch",
)  # fmt: skip
_ADVERBS = ("slowly", "quickly", "gently", "suddenly", "briefly", "softly", "calmly", "happily", "then")
_SCENE = re.compile(r"\s+(?:in front of|in (?:a|an|the) [\w ]*(?:room|studio|office|kitchen|street|park|garden)\b|"
                    r"outdoors|outside|indoors|under|against|with (?:a|an) [\w ]*(?:background|backdrop))\b", re.I)
_VERB = re.compile(r"\b(?:(?:" + "|".join(_ADVERBS) + r")\s+)?(?:" + "|".join(ACTION_VERBS) +
                   r")(?:s|es|ing)?\b", re.I)


STILL_PHRASE = "looks at the camera"  # the synthetic world's phrase for a person not moving


def spatial_prompt(prompt: str, still: str = STILL_PHRASE) -> str:
    """The Spatial Semantic Parser of the decoupled pipeline (seed 003 §3.2), rule backend: the prompt of the
    first frame keeps who, what they wear and where, and its action phrase becomes `still` —
    "..., wearing a red hoodie, smiles and turns to her left in front of a blue wall" ->
    "..., wearing a red hoodie, looks at the camera in front of a blue wall". (The paper asks an LLM, which also
    drops feet and bystanders and appends "close-up"; the laptop model's prompts have none of those.)"""
    text = " ".join(prompt.split())
    phrase = extract_action_phrase(text)
    if phrase == text.strip(" .;:"):  # no action verb found: the prompt is all description already
        return text
    return text.replace(phrase, still, 1)


def extract_action_phrase(prompt: str) -> str:
    """The action phrase of `prompt` (see the module docstring); never empty for a non-empty prompt."""
    text = " ".join(prompt.split())
    for clause in (c.strip() for c in text.split(",")):
        if clause.lower().startswith(("wearing", "with ")):
            continue  # clothing and attribute clauses ("wearing a red scarf") are not the action
        m = _VERB.search(clause)
        if m is None:
            continue
        phrase = _SCENE.split(clause[m.start():], maxsplit=1)[0]
        return phrase.strip(" .;:")
    return text.strip(" .;:")
