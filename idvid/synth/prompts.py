"""Prompts and action phrases written from a clip's ground truth.

Every colour in a prompt is a named colour the renderer used (hair, clothing, hat, scarf, background),
so prompt-following can be checked against the pixels. Directions are the *person's*: "turns to his
left" means the nose moves toward the image's right (yaw > 0); "tilts her head to the right" brings her
right ear (image left) down, i.e. roll < 0.

Example: "a young man with short black hair and a beard, wearing a red hoodie, smiles and turns to his
left in front of a blue wall, warm light from the left".
"""

from __future__ import annotations

import re

from idvid.synth.appearance import Appearance
from idvid.synth.identity import Identity
from idvid.synth.motion import Motion

_HAIR = {
    "buzz": "buzzed {c} hair",
    "short": "short {c} hair",
    "side_part": "side-parted {c} hair",
    "curly": "curly {c} hair",
    "bob": "{a} {c} bob",
    "long": "long {c} hair",
    "ponytail": "{c} hair in a ponytail",
}
_FACIAL_HAIR = {"stubble": "stubble", "moustache": "a moustache", "goatee": "a goatee", "beard": "a beard"}
_GLASSES = {"round": "round glasses", "rectangular": "glasses"}
_VERB = {
    "static": "looks at the camera",
    "talking": "talks",
    "smiling": "smiles",
    "laughing": "laughs",
    "blinking": "blinks",
    "nodding": "nods",
    "shaking_head": "shakes {p} head",
    "turning_left": "turns to {p} left",
    "turning_right": "turns to {p} right",
    "looking_up": "looks up",
    "looking_down": "looks down",
    "tilting_head": "tilts {p} head to the {side}",
    "surprised": "looks surprised",
}
_BACKGROUND = {
    "wall": "in front of {a} {c} wall",
    "gradient": "in front of {a} {c} to {c2} gradient background",
    "stripes": "in front of {a} {c} striped wall",
    "sky": "outdoors, with {c} hills under a blue sky",
    "room": "in {a} {c} room with a window",
    "bokeh": "in front of blurred {c} lights",
    "bookshelf": "in front of {a} {c} bookshelf",
}


def _a(word: str) -> str:
    """The indefinite article for a word: "an orange", "a red"."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def describe_person(ident: Identity) -> str:
    """Identity words only: "a young woman with long auburn hair and glasses"."""
    article = _a(ident.age)
    if ident.hair_style == "bald":
        parts = []
        lead = f"{article} {ident.age} bald {ident.gender}"
    else:
        parts = [_HAIR[ident.hair_style].format(c=ident.hair_colour, a=_a(ident.hair_colour))]
        if ident.fringe != "none":
            parts[0] += " with " + ("side-swept bangs" if ident.fringe == "swept" else
                                    "curtain bangs" if ident.fringe == "curtain" else "bangs")
        lead = f"{article} {ident.age} {ident.gender}"
    if ident.facial_hair != "none":
        parts.append(_FACIAL_HAIR[ident.facial_hair])
    if ident.glasses != "none":
        parts.append(_GLASSES[ident.glasses])
    if not parts:
        return lead
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{lead} with {joined}"


def describe_clothes(app: Appearance) -> str:
    items = [f"{_a(app.clothing_colour)} {app.clothing_colour} {app.clothing}"]
    if app.clothing == "suit":
        tie = app.scarf if app.scarf != "none" else "red"
        items[0] += f" and {_a(tie)} {tie} tie"
    if app.hat != "none":
        items.append(f"{_a(app.hat_colour)} {app.hat_colour} {app.hat}")
    if app.scarf != "none" and app.clothing != "suit":
        items.append(f"{_a(app.scarf)} {app.scarf} scarf")
    if app.earrings:
        items.append("gold earrings")
    if app.necklace and app.clothing in ("t-shirt", "sweater", "jacket"):
        items.append("a gold necklace")
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe_background(app: Appearance) -> str:
    c = app.background_colour
    return _BACKGROUND[app.background].format(a=_a(c), c=c, c2=app.background_colour2)


def describe_light(app: Appearance) -> str:
    where = {"front": "from the front", "left": "from the left", "right": "from the right", "above": "from above"}
    strength = "soft " if app.light_intensity < 0.95 else "bright " if app.light_intensity > 1.07 else ""
    return f"{strength}{app.light_temperature} light {where[app.light_direction]}"


SPEED_WORDS = ("slowly", "quickly")  # the only words of a prompt that say how much something moves
_SPEED_RE = re.compile(r"\b(?:" + "|".join(SPEED_WORDS) + r")\s+")


def strip_speed_words(text: str) -> str:
    """The text without its speed adverbs: "smiles and slowly turns" -> "smiles and turns". Training drops
    them at random (`task.speed_word_dropout`) so that the motion intensity, not the wording, carries how
    much the person moves (MotionCharacter's split: the action phrase says what, the intensity how much)."""
    return _SPEED_RE.sub("", text)


def action_phrase(ident: Identity, motion: Motion) -> str:
    """"smiles and turns to his left", "quickly shakes her head", ..."""
    side = "right" if motion.direction < 0 else "left"  # roll < 0 brings the person's right ear down
    verb = _VERB[motion.action].format(p=ident.pronoun, side=side)
    if motion.action != "static":
        if motion.speed < 0.75:
            verb = f"slowly {verb}"
        elif motion.speed > 1.45:
            verb = f"quickly {verb}"
    if motion.secondary:
        verb = f"{_VERB[motion.secondary]} and {verb}"
    return verb


def prompt(ident: Identity, app: Appearance, motion: Motion) -> str:
    return (f"{describe_person(ident)}, wearing {describe_clothes(app)}, {action_phrase(ident, motion)} "
            f"{describe_background(app)}, {describe_light(app)}")
