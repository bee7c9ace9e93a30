package sshd

// featureCommands lists the commands of optional features, each defined in
// its own file (add one append per feature).
func (s *Server) featureCommands() []*command {
	var cmds []*command
	cmds = append(cmds, processCommands()...)
	cmds = append(cmds, s.dashboardCommands()...)
	cmds = append(cmds, s.buildpackCommands()...)
	return cmds
}
