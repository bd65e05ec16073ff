"""Everyday words of other languages, for TTS negatives that sound like foreign speech.

Real users' rooms hear TV, radio and people in many languages; a model trained on English
negatives only fires on them (the real-voice suite measured it). :func:`foreign_phrases`
strings common words of a language into short pseudo-sentences (the prosody and sounds of
the language, not its grammar), which espeak-ng's voice for that language and Kokoro's
native voices then speak. Each entry: the espeak-ng voice, the Kokoro voice-name prefix
(``None``: no native Kokoro voice), and the words (native script).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import DataError

PHRASE_WORDS = (3, 8)
"""Words per pseudo-sentence (inclusive range)."""


@dataclass(frozen=True)
class Language:
    code: str
    espeak: str
    kokoro_prefix: str | None
    words: tuple[str, ...]


LANGUAGES = {lang.code: lang for lang in (
    Language("es", "es", "e", tuple(
        "hola gracias mañana casa tiempo ahora después siempre nunca ciudad trabajo familia noche semana "
        "ventana puerta comida agua calle coche dinero amigo mujer hombre niño pregunta respuesta momento "
        "verdad problema gobierno mundo país camino llamada número teléfono".split())),
    Language("fr", "fr-fr", "f", tuple(
        "bonjour merci demain maison toujours jamais maintenant aujourd'hui ville travail famille soir semaine "
        "fenêtre porte repas eau rue voiture argent ami femme homme enfant question réponse moment vérité "
        "problème gouvernement monde pays chemin appel numéro téléphone".split())),
    Language("it", "it", "i", tuple(
        "ciao grazie domani casa sempre mai adesso oggi città lavoro famiglia sera settimana finestra porta "
        "pranzo acqua strada macchina soldi amico donna uomo bambino domanda risposta momento verità problema "
        "governo mondo paese strada chiamata numero telefono".split())),
    Language("pt", "pt-br", "p", tuple(
        "olá obrigado amanhã casa sempre nunca agora hoje cidade trabalho família noite semana janela porta "
        "comida água rua carro dinheiro amigo mulher homem criança pergunta resposta momento verdade problema "
        "governo mundo país caminho ligação número telefone".split())),
    Language("de", "de", None, tuple(
        "hallo danke morgen haus immer niemals jetzt heute stadt arbeit familie abend woche fenster tür essen "
        "wasser straße auto geld freund frau mann kind frage antwort augenblick wahrheit problem regierung welt "
        "land weg anruf nummer telefon".split())),
    Language("nl", "nl", None, tuple(
        "hallo bedankt morgen huis altijd nooit nu vandaag stad werk familie avond week raam deur eten water "
        "straat auto geld vriend vrouw man kind vraag antwoord moment waarheid probleem regering wereld land weg "
        "telefoon nummer".split())),
    Language("pl", "pl", None, tuple(
        "cześć dziękuję jutro dom zawsze nigdy teraz dzisiaj miasto praca rodzina wieczór tydzień okno drzwi "
        "jedzenie woda ulica samochód pieniądze przyjaciel kobieta mężczyzna dziecko pytanie odpowiedź chwila "
        "prawda problem rząd świat kraj droga telefon numer".split())),
    Language("ru", "ru", None, tuple(
        "привет спасибо завтра дом всегда никогда сейчас сегодня город работа семья вечер неделя окно дверь "
        "еда вода улица машина деньги друг женщина мужчина ребёнок вопрос ответ минута правда проблема "
        "правительство мир страна дорога звонок номер телефон".split())),
    Language("tr", "tr", None, tuple(
        "merhaba teşekkürler yarın ev her zaman asla şimdi bugün şehir iş aile akşam hafta pencere kapı yemek "
        "su sokak araba para arkadaş kadın adam çocuk soru cevap an gerçek sorun hükümet dünya ülke yol telefon "
        "numara".split())),
    Language("hi", "hi", "h", tuple(
        "नमस्ते धन्यवाद कल घर हमेशा कभी अभी आज शहर काम परिवार शाम हफ़्ता खिड़की दरवाज़ा खाना पानी सड़क गाड़ी पैसा "
        "दोस्त औरत आदमी बच्चा सवाल जवाब पल सच समस्या सरकार दुनिया देश रास्ता फ़ोन नंबर".split())),
    Language("ja", "ja", "j", tuple(
        "こんにちは ありがとう あした いえ いつも いま きょう まち しごと かぞく よる しゅう まど ドア ごはん みず "
        "みち くるま おかね ともだち おんな おとこ こども しつもん こたえ ほんとう もんだい せかい くに でんわ "
        "ばんごう".split())),
    Language("zh", "cmn", "z", tuple(
        "你好 谢谢 明天 家 总是 从来 现在 今天 城市 工作 家庭 晚上 星期 窗户 门 饭 水 街道 汽车 钱 朋友 女人 男人 "
        "孩子 问题 回答 时候 真的 政府 世界 国家 路 电话 号码".split())),
)}


def language(code: str) -> Language:
    try:
        return LANGUAGES[code]
    except KeyError:
        raise DataError(f"no word list for language {code!r} (have: {', '.join(sorted(LANGUAGES))})") from None


def foreign_phrases(code: str, n: int, seed: int) -> list[str]:
    """``n`` distinct pseudo-sentences in language ``code`` (deterministic for a seed)."""
    lang = language(code)
    rng = np.random.default_rng([seed, sum(map(ord, code))])
    joiner = "" if code in ("ja", "zh") else " "
    phrases: list[str] = []
    seen: set[str] = set()
    while len(phrases) < n:
        k = int(rng.integers(PHRASE_WORDS[0], PHRASE_WORDS[1] + 1))
        text = joiner.join(lang.words[i] for i in rng.choice(len(lang.words), size=k, replace=False))
        if text not in seen:
            seen.add(text)
            phrases.append(text)
    return phrases
