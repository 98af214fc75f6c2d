// LensTrack station: keyboard-wedge burst detection and scan feedback (flash + beep).
//
// A wedge scanner "types" its code within a few milliseconds per key and ends with Enter or
// Tab. Every printable key is held back for `gapMs`: keys arriving closer than that form a
// burst; a burst of at least `minLength` keys ended by Enter/Tab is a scan and is sent to the
// server as one `station_scan` event, so none of it lands in a focused field. Anything else
// (a person typing a note) is released into the focused field when the pause shows it was typed.
// Gaps are measured between the keys' own timestamps, not when the handler runs: a page busy
// for a moment (just loaded, rendering) handles a queued burst late, its keys still 5 ms apart.
window.lenstrack = (() => {
  let pending = "";
  let lastKeyAt = 0;
  let flushTimer = null;
  let released = ""; // what the last pause's timer let into the focused field
  let audio = null;

  function releaseToField() {
    clearTimeout(flushTimer);
    const text = pending;
    pending = "";
    if (text && isEditable(document.activeElement)) {
      document.execCommand("insertText", false, text);
      return text;
    }
    return "";
  }

  // The pause after a key: typed text goes into the focused field now. With no field focused
  // nothing is waiting for it, so the next key's timestamp decides instead. A timer can fire
  // while the burst's next keys wait behind a busy moment (seen under load: the first four
  // keys of a scan went into a note): the next key's timestamp then shows the burst went on,
  // and `takeBack` undoes the insert, so the scan is read whole and none of it stays typed.
  function pauseAfterKey() {
    if (isEditable(document.activeElement)) released = releaseToField();
  }

  function takeBack() {
    document.execCommand("undo");
    pending = released + pending;
  }

  // Until the page is mounted there is no root element to emit from: hold the scan till then
  // (NiceGUI itself holds events until the socket's handshake).
  function sendScan(code) {
    if (typeof mounted_app !== "undefined" && mounted_app) emitEvent("station_scan", code);
    else setTimeout(() => sendScan(code), 20);
  }

  function isEditable(element) {
    return element && (element.isContentEditable || /^(INPUT|TEXTAREA)$/.test(element.tagName));
  }

  function installWedge(gapMs, minLength) {
    document.addEventListener(
      "keydown",
      (event) => {
        if (event.ctrlKey || event.metaKey || event.altKey) return;
        const now = event.timeStamp;
        if (released && now - lastKeyAt <= gapMs) takeBack();
        released = "";
        if (event.key === "Enter" || event.key === "Tab") {
          if (pending.length >= minLength && now - lastKeyAt <= gapMs) {
            event.preventDefault();
            event.stopPropagation();
            clearTimeout(flushTimer);
            const code = pending;
            pending = "";
            sendScan(code);
          } else {
            releaseToField();
          }
          return;
        }
        if (event.key.length !== 1) return;
        event.preventDefault();
        event.stopPropagation();
        if (pending && now - lastKeyAt > gapMs) releaseToField();
        pending += event.key;
        lastKeyAt = now;
        clearTimeout(flushTimer);
        flushTimer = setTimeout(pauseAfterKey, gapMs);
      },
      true,
    );
  }

  const TONES = { ok: [[880, 0.12]], warning: [[520, 0.15], [520, 0.15]], error: [[220, 0.45]] };

  function beep(tone) {
    try {
      audio = audio || new AudioContext();
      let at = audio.currentTime;
      for (const [frequency, seconds] of TONES[tone] || []) {
        const oscillator = audio.createOscillator();
        const gain = audio.createGain();
        oscillator.frequency.value = frequency;
        oscillator.type = tone === "error" ? "square" : "sine";
        gain.gain.setValueAtTime(0.3, at);
        gain.gain.exponentialRampToValueAtTime(0.001, at + seconds);
        oscillator.connect(gain).connect(audio.destination);
        oscillator.start(at);
        oscillator.stop(at + seconds);
        at += seconds + 0.06;
      }
    } catch (error) {
      console.warn("no audio", error);
    }
  }

  function feedback(tone) {
    const flash = document.getElementById("scan-flash");
    if (flash) {
      flash.className = `scan-flash tone-${tone}`;
      void flash.offsetWidth; // restart the animation
      flash.classList.add("flashing");
    }
    beep(tone);
  }

  return { installWedge, feedback };
})();
