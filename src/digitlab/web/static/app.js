// digitlab drawing page: draw on the pad (pointer events), send it as a PNG to /api/predict while
// drawing (throttled, one request at a time, stale answers dropped), show the answer, the ten
// probabilities and the 28x28 image the network saw. Plain JavaScript, no dependencies.
"use strict";

(() => {
  const BRUSH = 0.075;          // brush diameter as a share of the pad's side
  const INK = "#14161b";
  const SEND_EVERY_MS = 90;     // while drawing, at most one request per this many milliseconds
  const UPLOAD_SIZE = 224;      // the pad is sent as a PNG of this many pixels a side

  const $ = (id) => document.getElementById(id);
  const pad = $("pad"), padWrap = $("pad-wrap"), hint = $("pad-hint");
  const context = pad.getContext("2d");
  const result = $("result"), digitBox = $("digit"), verdict = $("verdict"), confidence = $("confidence");
  const barsBox = $("bars"), seen = $("seen"), seenContext = seen.getContext("2d");
  const fileInput = $("file"), sourceNote = $("source-note");
  const defaultNote = sourceNote.textContent;

  let classNames = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
  let strokes = [];             // each stroke: [[x, y], ...] in [0, 1] pad coordinates
  let current = null;           // the stroke being drawn
  let uploaded = null;          // an uploaded picture shown on the pad (ImageBitmap), or null
  let generation = 0;           // bumped on Clear and upload: answers for older drawings are dropped
  let timer = 0, inFlight = false, again = false, redrawQueued = false;

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
      pad.width = size;
      pad.height = size;
    }
    redraw();
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
      await ask({ method: "POST", body, headers: { "Content-Type": "image/png" } }, asked);
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        send();
      }
    }
  }

  async function ask(request, asked) {
    let answer, response;
    try {
      response = await fetch("/api/predict", request);
      answer = await response.json();
    } catch (error) {
      if (asked === generation) showError("The server does not answer", "Is `digitlab serve` still running?");
      return;
    }
    if (asked !== generation) return;     // cleared or replaced meanwhile
    if (response.ok) showAnswer(answer);
    else if (answer.code === "no_ink") showBlank();
    else showError("Cannot read this image", answer.error || `HTTP ${response.status}`);
  }

  // --- showing the answer ---------------------------------------------------------------------

  function buildBars() {
    barsBox.textContent = "";
    classNames.forEach((name, index) => {
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.dataset.index = String(index);
      bar.title = name;
      bar.innerHTML = '<span class="bar-value"></span><span class="bar-track"><span class="bar-fill"></span></span>' +
        '<span class="bar-label"></span>';
      bar.querySelector(".bar-label").textContent = name.length <= 2 ? name : String(index);
      barsBox.appendChild(bar);
    });
  }

  function setBars(probabilities) {
    const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
    barsBox.querySelectorAll(".bar").forEach((bar, index) => {
      const value = probabilities ? probabilities[index] : 0;
      bar.classList.toggle("best", index === best);
      bar.querySelector(".bar-fill").style.height = `${(value * 100).toFixed(1)}%`;
      bar.querySelector(".bar-value").textContent = probabilities && value >= 0.005 ? percent(value, 0) : "";
      bar.setAttribute("aria-label", `${classNames[index]}: ${percent(value, 1)}`);
    });
  }

  function setSeen(image) {
    const pixels = seenContext.createImageData(28, 28);
    for (let row = 0; row < 28; row++) {
      for (let column = 0; column < 28; column++) {
        const value = image ? Math.round(image[row][column] * 255) : 0;
        const at = (row * 28 + column) * 4;
        pixels.data[at] = pixels.data[at + 1] = pixels.data[at + 2] = value;
        pixels.data[at + 3] = 255;
      }
    }
    seenContext.putImageData(pixels, 0, 0);
  }

  function setDigit(text) {
    digitBox.textContent = text;
    digitBox.classList.toggle("long", text.length > 2);
  }

  const percent = (value, digits) => `${(value * 100).toFixed(digits)}%`;

  function showAnswer(answer) {
    const probability = answer.probabilities[answer.digit];
    const name = classNames[answer.digit] ?? String(answer.digit);
    result.dataset.state = "answer";
    setDigit(name);
    verdict.textContent = probability >= 0.8 ? `It's a ${name}` : probability >= 0.5 ? `Probably a ${name}` :
      `Maybe a ${name}?`;
    const ranked = answer.probabilities.map((value, index) => [value, index]).sort((a, b) => b[0] - a[0]);
    const runnerUp = ranked[1];
    confidence.textContent = (probability >= 0.9995 ? "Over 99.9% sure" : `${percent(probability, 1)} sure`) +
      (runnerUp[0] >= 0.01 ? `; next: ${classNames[runnerUp[1]]} at ${percent(runnerUp[0], 1)}` : "");
    setBars(answer.probabilities);
    setSeen(answer.preprocessed);
  }

  // A state with no answer to show: a message and a glyph instead of a digit, and no bars.
  function showMessage(state, heading, detail, glyph = "?") {
    result.dataset.state = state;
    setDigit(glyph);
    verdict.textContent = heading;
    confidence.textContent = detail;
    setBars(null);
    setSeen(null);
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

  // --- clear, upload ----------------------------------------------------------------------------

  function startOver() {
    generation += 1;
    clearTimeout(timer);
    timer = 0;
    again = false;
    strokes = [];
    current = null;
    if (uploaded && uploaded.close) uploaded.close();
    uploaded = null;
    sourceNote.textContent = defaultNote;
    queueRedraw();
  }

  function clearAll() {
    startOver();
    showEmpty();
  }

  async function upload(file) {
    if (!file) return;
    startOver();
    const asked = generation;
    sourceNote.textContent = `Uploaded: ${file.name || "an image"} (${Math.max(1, Math.round(file.size / 1024))} kB)`;
    try {
      uploaded = await createImageBitmap(file);
    } catch (error) {
      uploaded = null;                    // a format the browser cannot show (TIFF): the server may still read it
    }
    if (asked !== generation) return;
    queueRedraw();
    result.dataset.state = "busy";
    const form = new FormData();
    form.append("file", file, file.name || "image");
    await ask({ method: "POST", body: form }, asked);
  }

  $("clear").addEventListener("click", clearAll);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") clearAll();
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
