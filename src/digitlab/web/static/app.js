// digitlab drawing page: draw on the pad (pointer events), send it as a PNG to /api/look while
// drawing (throttled, one request at a time, stale answers dropped), and show its one answer (one
// digit, a number, or neither), a box around each digit read, the probabilities, the top three and
// what the network saw (the 28x28 image of one digit, the strip of a number). The server decides and
// words every percentage; the page only shows them. Settled answers (not each one while drawing) are
// announced to screen readers. Plain JavaScript, no dependencies.
//
// `?min_confidence=0.8` in the page's address is passed on to the API: the least probability of the
// best digit to name it (the server's default otherwise).
"use strict";

(() => {
  // The brush scales with the writing: its diameter is BRUSH_SHARE of the writing's size (MNIST's strokes
  // are a tenth to a sixth of a digit's height), within these shares of the pad's side, so that a
  // number written small is not blotted and one written across the pad is not hairline.
  const BRUSH_SHARE = 0.1;
  const MIN_BRUSH = 0.008, MAX_BRUSH = 0.05;
  const MIN_WRITING = 0.05;     // the writing's size (a share of the pad) for a dot or a short dash alone
  const INK = "#14161b";
  const SEND_EVERY_MS = 90;     // while drawing, at most one request per this many milliseconds
  // The drawing is sent cropped to its ink, scaled so that the writing is this many pixels high: small
  // writing reaches the server as large as large writing (and the image stays small).
  const WRITING_PIXELS = 128;
  const MARGIN_SHARE = 0.3;     // paper left around the ink in the image sent, in writing sizes
  const MAX_SEND_SIDE = 1600;   // a long line is sent at a lower scale rather than wider than this
  const MAX_SEND_BYTES = (5 * 1024 - 64) * 1024;  // the server's 5 MB body limit, less room for the form around the file
  const MAX_SIDE = 1600;        // larger pictures are shrunk to this many pixels on the longest side
  const ANNOUNCE_AFTER_MS = 500;  // a settled answer is announced when nothing has changed for this long
  const NOT_A_DIGIT = "not a digit";  // the class name of a model trained to refuse (the reader recipe)
  const BOX = "#3b4fd8";        // boxes around the digits read: on the white pad in both colour schemes
  const SEEN_BOX = "#8b9bff";   // boxes on what the network saw (light ink on black)
  const SEEN_SCALE = 8;         // what the network saw is drawn with this many canvas pixels per pixel
  const QUERY = apiQuery();     // "?min_confidence=..." when the page's address has it, else ""

  const $ = (id) => document.getElementById(id);
  const pad = $("pad"), padWrap = $("pad-wrap"), hint = $("pad-hint");
  const context = pad.getContext("2d");
  const boxes = $("boxes"), boxesContext = boxes.getContext("2d");
  const result = $("result"), digitBox = $("digit"), verdict = $("verdict"), confidence = $("confidence");
  const barsBox = $("bars"), seen_canvas = $("seen"), seenContext = seen_canvas.getContext("2d");
  const top3 = $("top3"), seenFrame = $("seen-frame"), announcer = $("announce"), chartNote = $("chart-note");
  const fileInput = $("file"), sourceNote = $("source-note"), undoButton = $("undo");
  const seenExplain = $("seen-explain");
  const defaultNote = sourceNote.textContent;

  let classNames = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
  let strokes = [];             // each stroke: [[x, y], ...] in [0, 1] pad coordinates
  let current = null;           // the stroke being drawn
  let uploaded = null;          // an uploaded picture shown on the pad (ImageBitmap), or null
  let fromUpload = false;       // the pad shows an upload (or a failed one): drawing starts over
  let generation = 0;           // bumped on Clear, Undo and upload: answers for older drawings are dropped
  let sentFrame = null;         // where the last image sent lies on the pad: {left, top, scale} in pad shares
                                // (scale: pad share per pixel sent); the digits' boxes are in its pixels
  let readDigits = [];          // the digits read from it: [{digit, box: [x0, y0, x1, y1], probabilities}]
  let timer = 0, inFlight = false, again = false, redrawQueued = false, announceTimer = 0;

  // --- drawing --------------------------------------------------------------------------------

  // The writing's size, a share of the pad: the height of all the ink drawn (a third of its width for a
  // dash), never under MIN_WRITING.
  function writingSize(all) {
    const points = all.flat();
    if (!points.length) return MIN_WRITING;
    const xs = points.map(([x]) => x), ys = points.map(([, y]) => y);
    const height = Math.max(...ys) - Math.min(...ys), width = Math.max(...xs) - Math.min(...xs);
    return Math.max(height, width / 3, MIN_WRITING);
  }

  const brushFor = (all) => Math.min(MAX_BRUSH, Math.max(MIN_BRUSH, BRUSH_SHARE * writingSize(all)));

  // One stroke, in pad shares mapped to a canvas by `frame` ({left, top, scale}: canvas pixels per pad
  // share, from the pad point (left, top)), with a brush `brush` pad shares wide.
  function drawStroke(target, points, frame, brush) {
    const size = frame.scale;
    const map = ([x, y]) => [(x - frame.left) * size, (y - frame.top) * size];
    points = points.map(map);
    target.strokeStyle = INK;
    target.fillStyle = INK;
    target.lineWidth = brush * size;
    target.lineCap = "round";
    target.lineJoin = "round";
    const [x0, y0] = points[0];
    if (points.length === 1) {
      target.beginPath();
      target.arc(x0, y0, (brush * size) / 2, 0, 2 * Math.PI);
      target.fill();
      return;
    }
    target.beginPath();
    target.moveTo(x0, y0);
    // Through the midpoints with quadratic curves: smooth strokes from jittery pointer samples.
    for (let index = 1; index < points.length - 1; index++) {
      const [x, y] = points[index], [nextX, nextY] = points[index + 1];
      target.quadraticCurveTo(x, y, (x + nextX) / 2, (y + nextY) / 2);
    }
    const [lastX, lastY] = points[points.length - 1];
    target.lineTo(lastX, lastY);
    target.stroke();
  }

  // The pad (or the part of it that `frame` maps) on a canvas of `width` x `height` pixels.
  function paint(target, width, height, frame) {
    target.fillStyle = "#fff";
    target.fillRect(0, 0, width, height);
    if (uploaded) {
      const fit = uploadFit();
      target.drawImage(uploaded, (fit.left - frame.left) * frame.scale, (fit.top - frame.top) * frame.scale,
        uploaded.width * fit.scale * frame.scale, uploaded.height * fit.scale * frame.scale);
    }
    const brush = brushFor(strokes);
    for (const stroke of strokes) drawStroke(target, stroke, frame, brush);
  }

  // Where an uploaded picture lies on the pad (fitted and centred): {left, top} in pad shares, and
  // `scale` pad shares per picture pixel.
  function uploadFit() {
    const scale = Math.min(1 / uploaded.width, 1 / uploaded.height);
    return { scale, left: (1 - uploaded.width * scale) / 2, top: (1 - uploaded.height * scale) / 2 };
  }

  function redraw() {
    redrawQueued = false;
    paint(context, pad.width, pad.height, { left: 0, top: 0, scale: pad.width });
    hint.classList.toggle("hidden", strokes.length > 0 || uploaded !== null);
    undoButton.setAttribute("aria-disabled", String(strokes.length === 0));
  }

  function queueRedraw() {
    if (!redrawQueued) {
      redrawQueued = true;
      requestAnimationFrame(redraw);
    }
  }

  function fitCanvas() {
    const size = Math.max(1, Math.round(pad.getBoundingClientRect().width * (window.devicePixelRatio || 1)));
    if (pad.width !== size) {
      pad.width = pad.height = size;
      boxes.width = boxes.height = size;
    }
    redraw();
    drawBoxes();
  }

  // --- boxes around the digits read ------------------------------------------------------------

  // The boxes drawn are listed on the canvas too, as [left, top, width, height] in its pixels (`data-boxes`),
  // and their tags as [left, top, width, height] (`data-tags`). A box lies just outside its digit's ink
  // (the brush's half width and its own line away), and its tag (the digit's name) above the box, or
  // below it where there is no room above: neither covers the ink.
  function drawBoxes() {
    const size = boxes.width, drawn = [], tags = [];
    boxesContext.clearRect(0, 0, size, boxes.height);
    boxes.dataset.boxes = boxes.dataset.tags = "[]";
    if (!sentFrame || !readDigits.length) return;
    const frame = sentFrame;
    const line = Math.max(2, Math.round(size / 200));
    // The boxes are of the ink as the server found it, to a few of its pixels (the faint edge of a stroke
    // may fall outside): outside them by the line, a gap, and three pixels of the image sent.
    const outset = 1.5 * line + 1 + 3 * frame.scale * size;
    const heights = readDigits.map((read) => (read.box[3] - read.box[1]) * frame.scale * size);
    // Tags in proportion to the digits (half the tallest's height), from 12 pixels to a sixteenth of the pad.
    const font = Math.round(Math.min(size / 16, Math.max(12, 0.5 * Math.max(...heights))));
    boxesContext.lineWidth = line;
    boxesContext.strokeStyle = BOX;
    boxesContext.font = `700 ${font}px system-ui, sans-serif`;
    boxesContext.textBaseline = "top";
    for (const read of readDigits) {
      const [x0, y0, x1, y1] = read.box;
      const left = (frame.left + x0 * frame.scale) * size - outset, top = (frame.top + y0 * frame.scale) * size - outset;
      const width = (x1 - x0) * frame.scale * size + 2 * outset, height = (y1 - y0) * frame.scale * size + 2 * outset;
      boxesContext.strokeRect(left, top, width, height);
      drawn.push([left, top, width, height].map(Math.round));
      const label = read.label;
      const tagWidth = boxesContext.measureText(label).width + font * 0.5, tagHeight = font * 1.2;
      const tagTop = top - line / 2 - tagHeight >= 0 ? top - line / 2 - tagHeight : top + height + line / 2;
      boxesContext.fillStyle = BOX;
      boxesContext.fillRect(left - line / 2, tagTop, tagWidth, tagHeight);
      boxesContext.fillStyle = "#fff";
      boxesContext.fillText(label, left - line / 2 + font * 0.25, tagTop + font * 0.12);
      tags.push([left - line / 2, tagTop, tagWidth, tagHeight].map(Math.round));
    }
    boxes.dataset.boxes = JSON.stringify(drawn);
    boxes.dataset.tags = JSON.stringify(tags);
  }

  function setBoxes(digits) {
    readDigits = digits;
    drawBoxes();
  }

  function pointOf(event) {
    const box = pad.getBoundingClientRect();
    const clamp = (value) => Math.min(1, Math.max(0, value));
    return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
  }

  pad.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 && event.pointerType === "mouse") return;
    event.preventDefault();
    if (fromUpload) startOver();         // drawing after an upload (read or not) starts a new drawing
    stopAnnouncing();                     // drawing again: the last answer is no longer settled
    pad.setPointerCapture(event.pointerId);
    current = [pointOf(event)];
    strokes.push(current);
    queueRedraw();
    schedule();
  });

  pad.addEventListener("pointermove", (event) => {
    if (!current) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const sample of events.length ? events : [event]) current.push(pointOf(sample));
    queueRedraw();
    schedule();
  });

  const endStroke = () => {
    if (!current) return;
    current = null;
    send();                               // the finished stroke is answered at once
  };
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);

  // --- asking the server ----------------------------------------------------------------------

  function schedule() {
    if (!timer) timer = setTimeout(send, SEND_EVERY_MS);
  }

  // The drawing as the PNG sent: cropped to its ink with MARGIN_SHARE of paper around, at WRITING_PIXELS
  // per writing size. Returns the blob and where it lies on the pad ({left, top, scale}: pad shares per pixel).
  async function padImage() {
    const points = strokes.flat(), writing = writingSize(strokes);
    const margin = MARGIN_SHARE * writing + brushFor(strokes) / 2;
    const left = Math.min(...points.map(([x]) => x)) - margin, top = Math.min(...points.map(([, y]) => y)) - margin;
    const right = Math.max(...points.map(([x]) => x)) + margin, bottom = Math.max(...points.map(([, y]) => y)) + margin;
    const scale = Math.min(WRITING_PIXELS / writing, MAX_SEND_SIDE / Math.max(right - left, bottom - top));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round((right - left) * scale));
    canvas.height = Math.max(1, Math.round((bottom - top) * scale));
    paint(canvas.getContext("2d"), canvas.width, canvas.height, { left, top, scale });
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    return { blob, frame: { left, top, scale: 1 / scale } };
  }

  async function send() {
    clearTimeout(timer);
    timer = 0;
    if (inFlight) {                       // one request at a time; the latest drawing goes next
      again = true;
      return;
    }
    if (!strokes.length) return;
    inFlight = true;
    const asked = generation;
    result.dataset.state = result.dataset.state === "empty" ? "busy" : result.dataset.state;
    try {
      const { blob, frame } = await padImage();
      await ask({ method: "POST", body: blob, headers: { "Content-Type": "image/png" } }, asked, frame);
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        send();
      }
    }
  }

  // The address's `min_confidence`, passed on to the API as it is (the server checks it).
  function apiQuery() {
    const value = new URLSearchParams(window.location.search).get("min_confidence");
    return value === null ? "" : `?min_confidence=${encodeURIComponent(value)}`;
  }

  // One image, one question: what is on it (/api/look: one digit, a number, or neither, with the boxes
  // of the digits read and what the network saw). `frame`: where the image lies on the pad ({left,
  // top, scale}: pad shares per pixel), or null when the page cannot show it (then no boxes).
  async function ask(request, asked, frame) {
    let response;
    try {
      response = await fetch("/api/look" + QUERY, request);
    } catch (error) {
      if (asked === generation) {
        showError("The server does not answer", "Check that digitlab is still running, then try again.");
        announceSettled();
      }
      return;
    }
    const answer = await response.json().catch(() => ({}));
    if (asked !== generation) return;     // cleared or replaced meanwhile
    sentFrame = frame;
    if (response.ok && typeof answer.kind === "string") showAnswer(answer);
    else if (answer.code === "no_ink") showBlank();
    else showError(...problem(response.status, answer.code));
    announceSettled();
  }

  // What went wrong, in the words of someone drawing or uploading, not of HTTP: [heading, detail].
  function problem(status, code) {
    if (code === "bad_image") {
      return ["Cannot read this file", "That file is not an image we can read. Try a photo or a scan saved as JPEG or PNG."];
    }
    if (code === "too_large") return ["This image is too large", "Try a smaller picture (under 5 MB), or a crop of the digit."];
    if (code === "no_image") return ["This file is empty", "Choose a photo or a scan of one digit."];
    if (code === "bad_min_confidence") {
      return ["This page's address asks for a bad threshold", "min_confidence must be a number from 0 to 1, as in ?min_confidence=0.8."];
    }
    if (status === 408) return ["Sending took too long", "The connection may be slow. Try again."];
    if (status >= 500) return ["Something went wrong on the server", "Try again; if it keeps happening, the server's log says why."];
    return ["Cannot read this image", "Try another picture of one digit, or draw it on the pad."];
  }

  // --- announcing -------------------------------------------------------------------------------

  // The visible card changes about every 90 ms while drawing; a screen reader hears only the answer
  // for a finished drawing: no stroke in progress, nothing waiting to be sent, unchanged for a moment.
  function announceSettled() {
    clearTimeout(announceTimer);
    if (current || timer || again) return;
    const sentence = (text) => text.replace(/([^.?!])$/, "$1.");
    const text = `${sentence(verdict.textContent)} ${sentence(confidence.textContent)}`;
    announceTimer = setTimeout(() => { announcer.textContent = text; }, ANNOUNCE_AFTER_MS);
  }

  function stopAnnouncing() {
    clearTimeout(announceTimer);
    announcer.textContent = "";           // so that the same answer later is announced again
  }

  // --- showing the answer ---------------------------------------------------------------------

  function buildBars() {
    barsBox.textContent = "";
    barsBox.style.gridTemplateColumns = `repeat(${classNames.length}, minmax(0, 1fr))`;
    classNames.forEach((name, index) => {
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.dataset.index = String(index);
      bar.title = name;
      bar.innerHTML = '<span class="bar-value"></span><span class="bar-track"><span class="bar-fill"></span></span>' +
        '<span class="bar-label"></span>';
      bar.querySelector(".bar-label").textContent = name === NOT_A_DIGIT ? "\u2717" : name.length <= 2 ? name : String(index);
      barsBox.appendChild(bar);
    });
  }

  // The bars of the image taken as one digit: `answer` has `probabilities` and their `probability_texts`
  // (the server's one rounding); null: empty bars. Tiny values ("<1%", "0%") get no text over their bar.
  function setBars(answer) {
    const probabilities = answer ? answer.probabilities : null;
    const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
    barsBox.querySelectorAll(".bar").forEach((bar, index) => {
      const value = probabilities ? probabilities[index] : 0, text = probabilities ? answer.probability_texts[index] : "0%";
      bar.classList.toggle("best", index === best);
      bar.querySelector(".bar-fill").style.height = `${(value * 100).toFixed(1)}%`;
      bar.querySelector(".bar-value").textContent = /^[<0]/.test(text) ? "" : text;
      bar.setAttribute("aria-label", `${classNames[index]}: ${text}`);
    });
  }

  const SEEN_WORDS = {
    digit: ["The 28 by 28 image the network sees",
      "Your drawing made to look like MNIST: cropped to the ink, scaled to fit 20 pixels, centred in " +
      "28\u00a0\u00d7\u00a028. These 784 numbers are all the network gets."],
    line: ["The line the number reader sees, with a box around each digit it read",
      "The number as the line reader sees it: the ink scaled to a strip 24 pixels high, read left to right " +
      "in one pass. A box around each digit it read."],
    digits: ["Each digit read, as the network sees it",
      "The number cut into digits, each made to look like MNIST (28\u00a0\u00d7\u00a028) and read alone."],
  };

  // What the network saw: `seen` = {kind, pixels (rows of values 0-1, light ink on black), boxes}, or null.
  // Drawn SEEN_SCALE times larger, each pixel a square, with the boxes of the digits read.
  function setSeen(seen) {
    seenFrame.dataset.empty = String(!seen);
    const kind = seen ? seen.kind : "digit";
    seenFrame.dataset.kind = kind;
    const [label, explanation] = SEEN_WORDS[kind] || SEEN_WORDS.digit;
    seen_canvas.setAttribute("aria-label", label);
    seenExplain.textContent = explanation;
    seen_canvas.dataset.boxes = JSON.stringify(seen ? seen.boxes : []);
    if (!seen || !seen.pixels.length) return;
    const rows = seen.pixels.length, columns = seen.pixels[0].length;
    const small = document.createElement("canvas");
    small.width = columns;
    small.height = rows;
    const smallContext = small.getContext("2d"), pixels = smallContext.createImageData(columns, rows);
    seen.pixels.forEach((row, rowIndex) => row.forEach((value, column) => {
      const at = (rowIndex * columns + column) * 4;
      pixels.data[at] = pixels.data[at + 1] = pixels.data[at + 2] = Math.round(value * 255);
      pixels.data[at + 3] = 255;
    }));
    smallContext.putImageData(pixels, 0, 0);
    seen_canvas.width = columns * SEEN_SCALE;
    seen_canvas.height = rows * SEEN_SCALE;
    seenContext.imageSmoothingEnabled = false;
    seenContext.drawImage(small, 0, 0, seen_canvas.width, seen_canvas.height);
    seenContext.strokeStyle = SEEN_BOX;
    seenContext.lineWidth = 2;
    for (const [x0, y0, x1, y1] of seen.boxes) {
      seenContext.strokeRect(x0 * SEEN_SCALE + 1, y0 * SEEN_SCALE + 1, (x1 - x0) * SEEN_SCALE - 2, (y1 - y0) * SEEN_SCALE - 2);
    }
  }

  // A digit, a number or a class name: numbers of 3-4 digits get a smaller font, longer text smaller still.
  function setDigit(text) {
    const number = /^\d+$/.test(text);
    digitBox.textContent = text;
    digitBox.classList.toggle("wide", number && text.length > 2 && text.length <= 4);
    digitBox.classList.toggle("long", text.length > 2 && !(number && text.length <= 4));
  }

  // A setting (the threshold asked for, the test accuracy), not a probability: those come worded by the server.
  const percent = (value, digits) => `${(value * 100).toFixed(digits)}%`;

  const inWords = (text) => text.replace(">", "Over ").replace("<", "Under ");

  // "a 7", "an 8", "an Ankle boot": by the sound of the first word, which for a digit is its name.
  function withArticle(name) {
    return `${/^8|^1[18](?!\d)|^[aeiou]/i.test(name) ? "an" : "a"} ${name}`;
  }

  const nameOf = (digit) => classNames[digit] ?? String(digit);

  // /api/look's answer: one digit, a number, or neither (the library decides; see inference/looking.py).
  function showAnswer(answer) {
    if (answer.kind === "digit") showDigit(answer);
    else if (answer.kind === "number") showNumber(answer);
    else showRefused(answer);
  }

  // "It's", "Probably", "Maybe ...?": how sure, in words, of a digit or a number.
  function sureWords(confidence, named) {
    return confidence >= 0.8 ? `It's ${named}` : confidence >= 0.5 ? `Probably ${named}` : `Maybe ${named}?`;
  }

  function showDigit(answer) {
    setBoxes(answer.boxes);
    result.dataset.state = "answer";
    setDigit(answer.text);
    verdict.textContent = sureWords(answer.confidence, withArticle(answer.text));
    confidence.textContent = `${inWords(answer.confidence_text)} sure`;
    setTop3(answer);
    setBars(answer);
    setSeen(answer.seen);
  }

  // A number: each digit (and separator) with its own probability and box; the bars would be those of
  // the whole drawing taken for one digit, so none are shown.
  function showNumber(answer) {
    const digits = answer.boxes.filter((read) => read.kind === "digit").length, marks = answer.boxes.length - digits;
    setBoxes(answer.boxes);
    result.dataset.state = "number";
    setDigit(answer.text);
    verdict.textContent = sureWords(answer.confidence, answer.text);
    confidence.textContent = `${inWords(answer.confidence_text)} sure of all ${digits} digits` +
      (marks ? ` and ${marks === 1 ? "the mark" : `${marks} marks`} between them` : "");
    setChips(answer.boxes.map((read) => [read.label, read.confidence_text]),
      marks ? "Digits and marks read, left to right" : "Digits read, left to right");
    top3.classList.add("digits");
    setBars(null);
    chartNote.hidden = false;
    setSeen(answer.seen);
  }

  // Neither one digit nor a number: the reason in words, with the probabilities the network had.
  function showRefused(answer) {
    setBoxes([]);
    result.dataset.state = "refused";
    if (answer.kind === "unsure") {
      const best = answer.probabilities.map((value, index) => [value, index])
        .filter(([, index]) => classNames[index] !== NOT_A_DIGIT).sort((a, b) => b[0] - a[0])[0];
      const asked = QUERY ? Number(new URLSearchParams(QUERY).get("min_confidence")) : NaN;
      setDigit("?");
      verdict.textContent = "Not sure that's a digit";
      confidence.textContent = `Maybe ${withArticle(nameOf(best[1]))}? ${inWords(answer.probability_texts[best[1]])} sure, ` +
        (Number.isFinite(asked) ? `under the ${percent(asked, 0)} asked for.` : "too little to say.");
    } else {
      setDigit("\u2717");
      verdict.textContent = "That doesn't look like a digit";
      confidence.textContent = answer.reason === "several digits"
        ? "Several marks, and no number in them."
        : "The network takes it for something else: a letter, a sign or a drawing.";
    }
    setTop3(answer);
    setBars(answer);
    setSeen(answer.seen);
  }

  // The three most probable classes of the image taken as one digit, with their texts; `answer` null: none.
  function setTop3(answer) {
    top3.classList.remove("digits");
    chartNote.hidden = true;
    const ranked = answer && answer.probabilities.map((value, index) => [index, value])
      .sort((a, b) => b[1] - a[1]).slice(0, 3).map(([index]) => [nameOf(index), answer.probability_texts[index]]);
    setChips(ranked, "Most likely");
  }

  // The chips under the verdict: [[name, probability as text], ...], or null for none.
  function setChips(chips, label) {
    top3.textContent = "";
    top3.hidden = !chips;
    top3.setAttribute("aria-label", label);
    if (!chips) return;
    for (const [named, text] of chips) {
      const item = document.createElement("li");
      const name = document.createElement("b");
      name.textContent = named;
      item.append(name, text);
      top3.appendChild(item);
    }
  }

  // A state with no answer to show: a message and a glyph instead of a digit, and no bars.
  function showMessage(state, heading, detail, glyph = "?") {
    result.dataset.state = state;
    setDigit(glyph);
    verdict.textContent = heading;
    confidence.textContent = detail;
    setTop3(null);
    setBars(null);
    setSeen(null);
    setBoxes([]);
  }

  function showEmpty() {
    showMessage("empty", "Waiting for a digit", "The answer appears while you draw.");
  }

  function showBlank() {
    showMessage("blank", "No ink found", "The image looks blank. Draw a digit, or upload a picture of one.");
  }

  function showError(title, detail) {
    showMessage("error", title, detail, "!");
  }

  // --- clear, undo, upload -----------------------------------------------------------------------

  function startOver() {
    generation += 1;
    clearTimeout(timer);
    timer = 0;
    again = false;
    strokes = [];
    current = null;
    setBoxes([]);
    if (uploaded && uploaded.close) uploaded.close();
    uploaded = null;
    fromUpload = false;
    sourceNote.textContent = defaultNote;
    stopAnnouncing();
    queueRedraw();
  }

  function clearAll() {
    startOver();
    showEmpty();
  }

  function undo() {
    if (current || !strokes.length) return;
    strokes.pop();
    setBoxes([]);                         // the boxes were for the drawing with that stroke
    generation += 1;                      // the answer on its way is for the drawing with that stroke
    clearTimeout(timer);
    timer = 0;
    again = false;
    stopAnnouncing();
    queueRedraw();
    if (strokes.length) send();
    else showEmpty();
  }

  // A picture larger than the server takes, or than is worth sending: drawn smaller on a canvas over
  // white (transparency reads as white, as on the server) and sent as a JPEG, halving until it fits.
  async function shrink(bitmap) {
    for (let side = MAX_SIDE; side >= 100; side = Math.floor(side / 2)) {
      const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
      const width = Math.max(1, Math.round(bitmap.width * scale));
      const height = Math.max(1, Math.round(bitmap.height * scale));
      const canvas = document.createElement("canvas");
      canvas.width = width;
      canvas.height = height;
      const target = canvas.getContext("2d");
      target.fillStyle = "#fff";
      target.fillRect(0, 0, width, height);
      target.imageSmoothingQuality = "high";
      target.drawImage(bitmap, 0, 0, width, height);
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
      if (blob && blob.size <= MAX_SEND_BYTES) return { blob, width, height };
    }
    return null;
  }

  const sizeText = (bytes) => bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MB`
    : `${Math.max(1, Math.round(bytes / 1024))} kB`;

  async function upload(file) {
    if (!file) return;
    startOver();
    fromUpload = true;
    const asked = generation;
    const name = file.name || "an image";
    sourceNote.textContent = `Uploaded: ${name} (${sizeText(file.size)})`;
    let bitmap = null;
    try {
      bitmap = await createImageBitmap(file);
    } catch (error) {
      bitmap = null;                      // a format the browser cannot show (TIFF): the server may still read it
    }
    if (asked !== generation) {
      if (bitmap) bitmap.close();
      return;
    }
    uploaded = bitmap;
    queueRedraw();
    result.dataset.state = "busy";
    let body = file, filename = file.name || "image";
    let sentWidth = bitmap ? bitmap.width : 0;
    if (bitmap && (file.size > MAX_SEND_BYTES || Math.max(bitmap.width, bitmap.height) > MAX_SIDE)) {
      const shrunk = await shrink(bitmap);
      if (asked !== generation) return;
      if (shrunk) {
        body = shrunk.blob;
        sentWidth = shrunk.width;
        filename = filename.replace(/\.[^.]*$/, "") + ".jpg";
        sourceNote.textContent = `Uploaded: ${name} (${sizeText(file.size)}; sent shrunk to ` +
          `${shrunk.width}\u00a0\u00d7\u00a0${shrunk.height})`;
      }
    }
    const form = new FormData();
    form.append("file", body, filename);
    // Where the picture sent lies on the pad: fitted and centred, as `paint` draws it.
    const fit = bitmap ? uploadFit() : null;
    const frame = fit ? { left: fit.left, top: fit.top, scale: (fit.scale * bitmap.width) / sentWidth } : null;
    await ask({ method: "POST", body: form }, asked, frame);
  }

  $("clear").addEventListener("click", clearAll);
  undoButton.addEventListener("click", undo);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") clearAll();
    else if ((event.ctrlKey || event.metaKey) && !event.shiftKey && !event.altKey && event.key.toLowerCase() === "z") {
      event.preventDefault();
      undo();
    }
  });
  fileInput.addEventListener("change", () => {
    upload(fileInput.files[0]);
    fileInput.value = "";                 // the same file can be chosen again
  });
  padWrap.addEventListener("dragover", (event) => {
    event.preventDefault();
    padWrap.classList.add("dragging");
  });
  padWrap.addEventListener("dragleave", () => padWrap.classList.remove("dragging"));
  padWrap.addEventListener("drop", (event) => {
    event.preventDefault();
    padWrap.classList.remove("dragging");
    upload(event.dataTransfer.files[0]);
  });

  // --- the model ---------------------------------------------------------------------------------

  function recipeText(training) {
    if (!training || !Object.keys(training).length) return "";
    const parts = [];
    if (training.architecture === "cnn" && training.conv_filters && training.conv_filters.length) {
      parts.push(`conv ${training.conv_filters.join("-")}`);
    }
    if (training.hidden_units) parts.push(`dense ${training.hidden_units.join("-")} ${training.activation || ""}`.trim());
    if (training.dropout) parts.push(`dropout ${training.dropout}`);
    if (training.optimizer) parts.push(training.optimizer);
    if (training.epochs) parts.push(`${training.epochs}\u00a0epoch${training.epochs === 1 ? "" : "s"}`);
    if (training.batch_size) parts.push(`batch\u00a0${training.batch_size}`);
    if (training.non_digit_images) parts.push(`${training.non_digit_images.toLocaleString("en")} non-digits`);
    const recipe = training.recipe ? `${training.recipe}: ` : "";
    return `${recipe}${parts.join(", ")}`;
  }

  async function loadModel() {
    try {
      const model = await (await fetch("/api/model")).json();
      $("model-name").textContent = model.name;
      $("model-name").title = model.source;
      const recipe = recipeText(model.training);
      $("model-recipe").textContent = recipe ? `Recipe ${recipe}` : "";
      const accuracy = model.metrics && model.metrics.test_accuracy;
      $("model-accuracy").textContent = typeof accuracy === "number" ? percent(accuracy, 2) : "not recorded";
      if (Array.isArray(model.class_names) && model.class_names.length) {
        const changed = model.class_names.join() !== classNames.join();
        classNames = model.class_names.map(String);
        if (changed) {
          buildBars();
          setBars(null);
        }
      }
    } catch (error) {
      $("model-name").textContent = "unknown (the server does not answer)";
    }
  }

  buildBars();
  showEmpty();
  fitCanvas();
  new ResizeObserver(fitCanvas).observe(pad);
  loadModel();
})();
