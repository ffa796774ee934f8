// Microphone and speaker choice, remembered in localStorage. The microphone is asked for as an
// "ideal" deviceId, so a remembered device that is gone falls back to the default one instead of
// failing the call.

const MICROPHONE_KEY = "ringwell.phone.microphone";
const SPEAKER_KEY = "ringwell.phone.speaker";

function load(key) {
  try {
    return window.localStorage.getItem(key) || "";
  } catch {
    return "";
  }
}

function save(key, value) {
  try {
    if (value) {
      window.localStorage.setItem(key, value);
    } else {
      window.localStorage.removeItem(key);
    }
  } catch {
    // Storage off (private mode, policy): the choice lasts for this page only.
  }
}

export function chosenMicrophone() {
  return load(MICROPHONE_KEY);
}

export function chosenSpeaker() {
  return load(SPEAKER_KEY);
}

export function chooseMicrophone(deviceId) {
  save(MICROPHONE_KEY, deviceId);
}

export function chooseSpeaker(deviceId) {
  save(SPEAKER_KEY, deviceId);
}

/** The `audio` member of getUserMedia constraints for the chosen microphone. */
export function microphoneConstraint() {
  const deviceId = chosenMicrophone();
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  return deviceId ? { ...audio, deviceId } : audio;
}

export function canChooseSpeaker() {
  return typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
}

function fill(select, devices, chosen, fallbackLabel) {
  const options = [new Option("System default", "")];
  devices.forEach((device, index) => {
    if (device.deviceId === "default" || device.deviceId === "") {
      return; // the "System default" option stands for it
    }
    options.push(new Option(device.label || `${fallbackLabel} ${index + 1}`, device.deviceId));
  });
  select.replaceChildren(...options);
  select.value = options.some((option) => option.value === chosen) ? chosen : "";
}

/** Lists the devices in the two selects (labels appear once the microphone is allowed). */
export async function listDevices(microphoneSelect, speakerSelect) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) {
    return;
  }
  const devices = await navigator.mediaDevices.enumerateDevices();
  fill(microphoneSelect, devices.filter((d) => d.kind === "audioinput"), chosenMicrophone(), "Microphone");
  fill(speakerSelect, devices.filter((d) => d.kind === "audiooutput"), chosenSpeaker(), "Speaker");
}

/** Plays `element` on the chosen speaker where the browser allows choosing. */
export async function applySpeaker(element) {
  if (!canChooseSpeaker()) {
    return;
  }
  try {
    await element.setSinkId(chosenSpeaker());
  } catch {
    // The device is gone: the default one plays.
    await element.setSinkId("").catch(() => {});
  }
}
