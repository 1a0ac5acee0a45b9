package call

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard/switchboard/internal/config"
	"github.com/switchboard/switchboard/internal/media"
	"github.com/switchboard/switchboard/internal/prompt"
)

// recording is the call's recording: one stereo file for the whole call,
// fed by the taps of whichever bridge is up.
type recording struct {
	file *os.File
	r    *media.Recorder
}

// startRecording starts (or, after a transfer, resumes) the call's stereo
// recording: caller on the left, callee on the right. The extension's
// recording_notice is played to both sides when it starts.
func (c *call) startRecording(ctx context.Context, br *media.Bridge, ext *config.Extension) {
	if c.recorder == nil {
		dir, path, err := recordingPath(c.e.cfg.Recordings, c.rec.ID+".wav", c.rec.Account)
		if err != nil {
			c.tracef("recording: %v", err)
			return
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			c.tracef("recording: %v", err)
			return
		}
		f, err := os.Create(path)
		if err != nil {
			c.tracef("recording: %v", err)
			return
		}
		c.recorder = &recording{file: f, r: media.NewRecorder(f)}
		c.rec.Recording = path
		c.tracef("recording to %s", path)
		if ext != nil && ext.RecordingNotice != "" {
			a, errA := c.prompt(ext.RecordingNotice, false)
			b, errB := c.prompt(ext.RecordingNotice, false)
			if err := errors.Join(errA, errB); err != nil {
				c.tracef("recording notice %s: %v", ext.RecordingNotice, err)
			} else {
				go func() { _ = br.PlayBoth(ctx, a, b) }()
			}
		}
	}
	br.SetTap(media.SideA, c.recorder.r.Left)
	br.SetTap(media.SideB, c.recorder.r.Right)
}

func (c *call) closeRecording() {
	if c.recorder == nil {
		return
	}
	length, err := c.recorder.r.Close()
	if err != nil {
		c.log.Error("recording", "err", err)
	}
	c.rec.RecordingLength = length
	if fi, err := c.recorder.file.Stat(); err == nil {
		c.rec.RecordingBytes = fi.Size()
	}
	if err := c.recorder.file.Close(); err != nil {
		c.log.Error("recording", "err", err)
	}
	c.emit(EventRecording, c.rec.AnsweredBy, "")
}

// errUnsafePath refuses a recording path that a name would move out of
// the recordings directory.
var errUnsafePath = errors.New("unsafe recording path")

// recordingPath joins the recordings directory base, the directories dirs
// (account, "voicemail", user) and the file name, and returns the file's
// directory and path. Each element must be one plain path component (no
// separator, NUL, "." or ".."), and the result must stay under base: names
// come from configuration (validated as config.SafeName, but a document
// stored before that rule is not) and must never write elsewhere.
func recordingPath(base, file string, dirs ...string) (dir, path string, err error) {
	for _, e := range append(dirs, file) {
		if e == "" || e == "." || e == ".." || strings.ContainsAny(e, "/\\\x00") {
			return "", "", fmt.Errorf("%w: %q is not a plain file name", errUnsafePath, e)
		}
	}
	dir = filepath.Join(append([]string{base}, dirs...)...)
	path = filepath.Join(dir, file)
	rel, err := filepath.Rel(filepath.Clean(base), path)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", "", fmt.Errorf("%w: %s is not inside %s", errUnsafePath, path, base)
	}
	return dir, path, nil
}

// MaxVoicemail is the longest message a caller may leave (SPEC §3).
const MaxVoicemail = 2 * time.Minute

// voicemail answers the caller, plays the greeting and a beep, and records
// up to MaxVoicemail of what the caller says for user; the file is linked
// from the call record.
func (c *call) voicemail(ctx, dctx context.Context, user string) {
	if !c.answerCaller() {
		return
	}
	dir, path, err := recordingPath(c.e.cfg.Recordings, c.rec.ID+".wav", c.rec.Account, "voicemail", user)
	var f *os.File
	if err == nil {
		err = os.MkdirAll(dir, 0o750)
	}
	if err == nil {
		f, err = os.Create(path)
	}
	if err != nil {
		c.tracef("voicemail for %s: %v", user, err)
		c.byeCaller()
		return
	}
	defer f.Close()
	ch := media.NewChannel(c.sess, c.neg.Codec, c.neg.PayloadType, c.neg.EventPT, c.log)
	ch.Start(dctx)
	defer ch.Stop()
	// The user's own greeting is the account prompt voicemail-USER.
	greeting := []media.Source{media.Beep()}
	if own, err := c.prompt("voicemail-"+user, false); err == nil {
		greeting = []media.Source{own, media.Beep()}
	} else if p, ok := prompt.Builtin("leave-message"); ok {
		greeting = []media.Source{media.NewPCMSource(p, false), media.Beep()}
	}
	c.tracef("voicemail for %s: greeting, beep, recording up to %s", user, MaxVoicemail)
	if err := ch.Play(dctx, media.Concat(greeting...)); err != nil {
		c.cause = CauseCallerBye
		return
	}
	rec := media.NewRecorder(f)
	ch.SetTap(rec.Left)
	t := time.NewTimer(MaxVoicemail)
	defer t.Stop()
	hash := make(chan struct{})
	go func() { // # ends the message
		for {
			select {
			case d := <-ch.Digits():
				if d == '#' {
					close(hash)
					return
				}
			case <-dctx.Done():
				return
			}
		}
	}()
	select {
	case <-dctx.Done():
		c.cause = CauseCallerBye
	case <-hash:
		c.cause = CauseVoicemailLeft
		defer c.byeCaller()
	case <-t.C:
		c.cause = CauseVoicemailFull
		defer c.byeCaller()
	case <-ctx.Done():
		defer c.byeCaller()
	case <-c.e.hangup:
		defer c.byeCaller()
	}
	ch.SetTap(nil)
	length, err := rec.Close()
	if err != nil {
		c.tracef("voicemail for %s: %v", user, err)
		return
	}
	c.rec.Voicemail, c.rec.VoicemailUser = path, user
	c.tracef("voicemail for %s: %s recorded", user, length.Round(time.Second))
	c.emit(EventVoicemail, "voicemail:"+user, "")
}
