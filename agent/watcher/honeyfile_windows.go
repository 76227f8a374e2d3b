package watcher

// noFollow: Windows has no O_NOFOLLOW; os.OpenFile with O_EXCL does not follow
// a reparse point when creating.
const noFollow = 0
