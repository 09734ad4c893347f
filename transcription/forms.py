"""Forms of the pages (the glossary; the rest are one-field posts)."""
from __future__ import annotations

import re

from django import forms

from .models import GlossaryTerm

MAX_GLOSSARY_TERMS = 500
LANGUAGE_PREFIX = re.compile(r"^([A-Za-z]{2,3})(?:-[A-Za-z]{2,4})?\s*:\s*(.+)$")


class GlossaryForm(forms.Form):
    """One term per line; `ko: 김민수` for a term of one language only."""

    terms = forms.CharField(widget=forms.Textarea(attrs={"rows": 14, "cols": 50}), required=False,
                            help_text="One name or word per line. Start a line with a language code and a colon "
                                      "(ko: 김민수) for a term of that language only.")

    def clean_terms(self) -> list[tuple[str, str]]:
        parsed, problems = [], []
        for number, line in enumerate(self.cleaned_data["terms"].splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            match = LANGUAGE_PREFIX.match(line)
            language, term = (match.group(1).lower(), match.group(2).strip()) if match else ("", line)
            if len(term) > GlossaryTerm.MAX_LENGTH:
                problems.append(f"line {number}: at most {GlossaryTerm.MAX_LENGTH} characters")
            parsed.append((term, language))
        parsed = list(dict.fromkeys(parsed))
        if len(parsed) > MAX_GLOSSARY_TERMS:
            problems.append(f"at most {MAX_GLOSSARY_TERMS} terms")
        if problems:
            raise forms.ValidationError(problems)
        return parsed

    @staticmethod
    def initial_text(terms) -> str:
        return "\n".join(f"{t.language}: {t.term}" if t.language else t.term for t in terms)
