// digitlab drawing page: draw on the pad (pointer events), send it as a PNG to /api/predict (one
// digit) and /api/read (a number) while drawing (throttled, one request at a time, stale answers
// dropped), show the answer, a box around each digit read, the probabilities, the top three and
// the 28x28 image the network saw. Settled answers (not each one while drawing) are announced to
// screen readers. Plain JavaScript, no dependencies.
//
// `?min_confidence=0.8` in the page's address is passed on to the API: the least probability of the
// best digit to name it (the server's default otherwise).
"use strict";

(() => {
  const BRUSH = 0.05;           // brush diameter as a share of the pad's side: a tenth of a digit drawn
                                // across most of the pad (MNIST's strokes: a tenth to a sixth); thicker
                                // blots digits drawn small
  const INK = "#14161b";
  const SEND_EVERY_MS = 90;     // while drawing, at most one request per this many milliseconds
  const UPLOAD_SIZE = 224;      // the pad is sent as a PNG of this many pixels a side
  const MAX_SEND_BYTES = (5 * 1024 - 64) * 1024;  // the server's 5 MB body limit, less room for the form around the file
  const MAX_SIDE = 1600;        // larger pictures are shrunk to this many pixels on the longest side
  const ANNOUNCE_AFTER_MS = 500;  // a settled answer is announced when nothing has changed for this long
  const NOT_A_DIGIT = "not a digit";  // the class name of a model trained to refuse (the reader recipe)
  const BOX = "#3b4fd8";        // boxes around the digits read: on the white pad in both colour schemes
  const QUERY = apiQuery();     // "?min_confidence=..." when the page's address has it, else ""

  const $ = (id) => document.getElementById(id);
  const pad = $("pad"), padWrap = $("pad-wrap"), hint = $("pad-hint");
  const context = pad.getContext("2d");
  const boxes = $("boxes"), boxesContext = boxes.getContext("2d");
  const result = $("result"), digitBox = $("digit"), verdict = $("verdict"), confidence = $("confidence");
  const barsBox = $("bars"), seen = $("seen"), seenContext = seen.getContext("2d");
  const top3 = $("top3"), seenFrame = $("seen-frame"), announcer = $("announce"), chartNote = $("chart-note");
  const fileInput = $("file"), sourceNote = $("source-note"), undoButton = $("undo");
  const defaultNote = sourceNote.textContent;

  let classNames = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
  let strokes = [];             // each stroke: [[x, y], ...] in [0, 1] pad coordinates
  let current = null;           // the stroke being drawn
  let uploaded = null;          // an uploaded picture shown on the pad (ImageBitmap), or null
  let generation = 0;           // bumped on Clear, Undo and upload: answers for older drawings are dropped
  let sentSize = null;          // [width, height] of the last image sent: the digits' boxes are in its pixels
  let readDigits = [];          // the digits read from it: [{digit, box: [x0, y0, x1, y1], probabilities}]
  let timer = 0, inFlight = false, again = false, redrawQueued = false, announceTimer = 0;

  // --- drawing --------------------------------------------------------------------------------

  function drawStroke(target, points, size) {
    target.strokeStyle = INK;
    target.fillStyle = INK;
    target.lineWidth = BRUSH * size;
    target.lineCap = "round";
    target.lineJoin = "round";
    const [x0, y0] = points[0];
    if (points.length === 1) {
      target.beginPath();
      target.arc(x0 * size, y0 * size, (BRUSH * size) / 2, 0, 2 * Math.PI);
      target.fill();
      return;
    }
    target.beginPath();
    target.moveTo(x0 * size, y0 * size);
    // Through the midpoints with quadratic curves: smooth strokes from jittery pointer samples.
    for (let index = 1; index < points.length - 1; index++) {
      const [x, y] = points[index], [nextX, nextY] = points[index + 1];
      target.quadraticCurveTo(x * size, y * size, ((x + nextX) / 2) * size, ((y + nextY) / 2) * size);
    }
    const [lastX, lastY] = points[points.length - 1];
    target.lineTo(lastX * size, lastY * size);
    target.stroke();
  }

  function paint(target, size) {
    target.fillStyle = "#fff";
    target.fillRect(0, 0, size, size);
    if (uploaded) {
      const scale = Math.min(size / uploaded.width, size / uploaded.height);
      const width = uploaded.width * scale, height = uploaded.height * scale;
      target.drawImage(uploaded, (size - width) / 2, (size - height) / 2, width, height);
    }
    for (const stroke of strokes) drawStroke(target, stroke, size);
  }

  function redraw() {
    redrawQueued = false;
    paint(context, pad.width);
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

  // Where the image sent lies on the pad, in pad pixels: the whole pad for a drawing, the picture
  // fitted and centred (as `paint` draws it) for an upload.
  function sentFrame(size) {
    const [width, height] = sentSize;
    const scale = Math.min(size / width, size / height);
    return { scale, left: (size - width * scale) / 2, top: (size - height * scale) / 2 };
  }

  // The boxes drawn are listed on the canvas too, as [left, top, width, height] in its pixels (`data-boxes`).
  function drawBoxes() {
    const size = boxes.width, drawn = [];
    boxesContext.clearRect(0, 0, size, boxes.height);
    boxes.dataset.boxes = "[]";
    if (!sentSize || !readDigits.length) return;
    const frame = sentFrame(size);
    const line = Math.max(2, Math.round(size / 160));
    const font = Math.max(12, Math.round(size / 16));
    boxesContext.lineWidth = line;
    boxesContext.strokeStyle = BOX;
    boxesContext.font = `700 ${font}px system-ui, sans-serif`;
    boxesContext.textBaseline = "top";
    for (const read of readDigits) {
      const [x0, y0, x1, y1] = read.box;
      const left = frame.left + x0 * frame.scale, top = frame.top + y0 * frame.scale;
      const width = (x1 - x0) * frame.scale, height = (y1 - y0) * frame.scale;
      boxesContext.strokeRect(left, top, width, height);
      drawn.push([left, top, width, height].map(Math.round));
      // The digit in a tag on the box's top-left corner, above it where there is room, else inside.
      const label = classNames[read.digit] ?? String(read.digit);
      const tagWidth = boxesContext.measureText(label).width + font * 0.5, tagHeight = font * 1.2;
      const tagTop = top - tagHeight >= 0 ? top - tagHeight : top;
      boxesContext.fillStyle = BOX;
      boxesContext.fillRect(left - line / 2, tagTop, tagWidth, tagHeight);
      boxesContext.fillStyle = "#fff";
      boxesContext.fillText(label, left - line / 2 + font * 0.25, tagTop + font * 0.12);
    }
    boxes.dataset.boxes = JSON.stringify(drawn);
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
    if (uploaded) startOver();           // drawing after an upload starts a new drawing
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

  function padImage() {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = UPLOAD_SIZE;
    paint(canvas.getContext("2d"), UPLOAD_SIZE);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
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
      const body = await padImage();
      await ask({ method: "POST", body, headers: { "Content-Type": "image/png" } }, asked, [UPLOAD_SIZE, UPLOAD_SIZE]);
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

  // One image, two questions at once: one digit (/api/predict: the card, the bars, what the network
  // sees) and a number (/api/read: the digits and their boxes). `size`: the image's [width, height],
  // or null when the page cannot show it (then no boxes).
  async function ask(request, asked, size) {
    let responses;
    try {
      responses = await Promise.all(["/api/predict", "/api/read"].map((path) => fetch(path + QUERY, request)));
    } catch (error) {
      if (asked === generation) {
        showError("The server does not answer", "Check that digitlab is still running, then try again.");
        announceSettled();
      }
      return;
    }
    const [answer, reading] = await Promise.all(responses.map((response) => response.json().catch(() => ({}))));
    if (asked !== generation) return;     // cleared or replaced meanwhile
    const [predicted, read] = responses;
    sentSize = size;
    if (predicted.ok && Array.isArray(answer.probabilities)) {
      showAnswer(answer, read.ok && typeof reading.text === "string" ? reading : { text: "", digits: [], confidence: 0 });
    } else if (answer.code === "no_ink") showBlank();
    else showError(...problem(predicted.status, answer.code));
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

  function setBars(probabilities) {
    const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
    barsBox.querySelectorAll(".bar").forEach((bar, index) => {
      const value = probabilities ? probabilities[index] : 0;
      bar.classList.toggle("best", index === best);
      bar.querySelector(".bar-fill").style.height = `${(value * 100).toFixed(1)}%`;
      bar.querySelector(".bar-value").textContent = probabilities && value >= 0.005 ? percentText(value) : "";
      bar.setAttribute("aria-label", `${classNames[index]}: ${percentText(value)}`);
    });
  }

  function setSeen(image) {
    const pixels = seenContext.createImageData(28, 28);
    for (let row = 0; row < 28; row++) {
      for (let column = 0; column < 28; column++) {
        const value = image ? Math.round(image[row][column] * 255) : 0;  // light ink on black
        const at = (row * 28 + column) * 4;
        pixels.data[at] = pixels.data[at + 1] = pixels.data[at + 2] = value;
        pixels.data[at + 3] = 255;
      }
    }
    seenContext.putImageData(pixels, 0, 0);
    seenFrame.dataset.empty = String(!image);
  }

  // A digit, a number or a class name: numbers of 3-4 digits get a smaller font, longer text smaller still.
  function setDigit(text) {
    const number = /^\d+$/.test(text);
    digitBox.textContent = text;
    digitBox.classList.toggle("wide", number && text.length > 2 && text.length <= 4);
    digitBox.classList.toggle("long", text.length > 2 && !(number && text.length <= 4));
  }

  const percent = (value, digits) => `${(value * 100).toFixed(digits)}%`;

  // The one rounding for every probability on the page (bars, headline, top three): whole percents,
  // and never 100% or 0% for what is not certain.
  function percentText(value) {
    const whole = Math.round(value * 100);
    if (whole >= 100 && value < 1) return ">99%";
    if (whole <= 0 && value > 0) return "<1%";
    return `${whole}%`;
  }

  const inWords = (text) => text.replace(">", "Over ").replace("<", "Under ");

  // "a 7", "an 8", "an Ankle boot": by the sound of the first word, which for a digit is its name.
  function withArticle(name) {
    return `${/^8|^1[18](?!\d)|^[aeiou]/i.test(name) ? "an" : "a"} ${name}`;
  }

  const nameOf = (digit) => classNames[digit] ?? String(digit);

  // `answer`: /api/predict's (one digit, or none and why); `reading`: /api/read's (the number). The
  // library decides whether the drawing is one digit: when /api/predict names one, that is the
  // answer (the reading may cut a loose 8 into a 4 and an 8); when it says "several digits", the
  // number read is; otherwise, no digit at all (the reading may find digits in the pieces of a star).
  function showAnswer(answer, reading) {
    if (answer.digit !== null && answer.digit !== undefined) showDigit(answer, reading);
    else if (answer.reason === "several digits" && reading.text) showNumber(answer, reading);
    else showRefused(answer);
  }

  // One digit: its box when the reading found that digit alone (it may cut a digit differently, or
  // leave out a part it is unsure of: then no box rather than one around a part).
  function showDigit(answer, reading) {
    const [read] = reading.digits;
    setBoxes(reading.digits.length === 1 && read.digit === answer.digit ? [read] : []);
    const probability = answer.probabilities[answer.digit];
    const named = withArticle(nameOf(answer.digit));
    result.dataset.state = "answer";
    setDigit(nameOf(answer.digit));
    verdict.textContent = probability >= 0.8 ? `It's ${named}` : probability >= 0.5 ? `Probably ${named}` :
      `Maybe ${named}?`;
    confidence.textContent = `${inWords(percentText(probability))} sure`;
    setTop3(answer.probabilities);
    setBars(answer.probabilities);
    setSeen(answer.preprocessed);
  }

  // Several digits: the number, each digit with its own probability and box; the bars would be those
  // of the whole drawing taken for one digit, so none are shown.
  function showNumber(answer, reading) {
    setBoxes(reading.digits);
    result.dataset.state = "number";
    setDigit(reading.text);
    verdict.textContent = `Several digits \u2014 read as ${reading.text}`;
    confidence.textContent = reading.text.length >= 2
      ? `${inWords(percentText(reading.confidence))} sure of all ${reading.text.length}`
      : "The rest does not look like digits.";
    setChips(reading.digits.map((read) => [read.digit, read.probabilities[read.digit]]), "Digits read, left to right");
    top3.classList.add("digits");
    setBars(null);
    chartNote.hidden = false;
    setSeen(answer.preprocessed);
  }

  // Not one digit, and no number: the server's reason in words, with the probabilities it had.
  function showRefused(answer) {
    setBoxes([]);
    result.dataset.state = "refused";
    if (answer.reason === "unsure") {
      const best = answer.probabilities.map((value, index) => [value, index])
        .filter(([, index]) => classNames[index] !== NOT_A_DIGIT).sort((a, b) => b[0] - a[0])[0];
      const asked = QUERY ? Number(new URLSearchParams(QUERY).get("min_confidence")) : NaN;
      setDigit("?");
      verdict.textContent = "Not sure that's a digit";
      confidence.textContent = `Maybe ${withArticle(nameOf(best[1]))}? ${inWords(percentText(best[0]))} sure, ` +
        (Number.isFinite(asked) ? `under the ${percent(asked, 0)} asked for.` : "too little to say.");
    } else {
      setDigit("\u2717");
      verdict.textContent = "That doesn't look like a digit";
      confidence.textContent = answer.reason === "several digits"
        ? "It looks like several marks, and none of them like a digit."
        : "The network takes it for something else: a letter, a sign or a drawing.";
    }
    setTop3(answer.probabilities);
    setBars(answer.probabilities);
    setSeen(answer.preprocessed);
  }

  function setTop3(probabilities) {
    top3.classList.remove("digits");
    chartNote.hidden = true;
    const ranked = probabilities &&
      probabilities.map((value, index) => [index, value]).sort((a, b) => b[1] - a[1]).slice(0, 3);
    setChips(ranked, "Most likely");
  }

  // The chips under the verdict: [[class, probability], ...], or null for none.
  function setChips(chips, label) {
    top3.textContent = "";
    top3.hidden = !chips;
    top3.setAttribute("aria-label", label);
    if (!chips) return;
    for (const [index, value] of chips) {
      const item = document.createElement("li");
      const name = document.createElement("b");
      name.textContent = nameOf(index);
      item.append(name, percentText(value));
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
    let size = bitmap ? [bitmap.width, bitmap.height] : null;
    if (bitmap && (file.size > MAX_SEND_BYTES || Math.max(bitmap.width, bitmap.height) > MAX_SIDE)) {
      const shrunk = await shrink(bitmap);
      if (asked !== generation) return;
      if (shrunk) {
        body = shrunk.blob;
        size = [shrunk.width, shrunk.height];
        filename = filename.replace(/\.[^.]*$/, "") + ".jpg";
        sourceNote.textContent = `Uploaded: ${name} (${sizeText(file.size)}; sent shrunk to ` +
          `${shrunk.width}\u00a0\u00d7\u00a0${shrunk.height})`;
      }
    }
    const form = new FormData();
    form.append("file", body, filename);
    await ask({ method: "POST", body: form }, asked, size);
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
